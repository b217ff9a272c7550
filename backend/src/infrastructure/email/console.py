"""Development sender: writes each email to the log instead of sending it."""

from __future__ import annotations

import logging

from src.infrastructure.email.message import EmailMessage

logger = logging.getLogger(__name__)


class ConsoleEmailSender:
    def __init__(self, default_sender: str) -> None:
        self.default_sender = default_sender

    async def send(self, message: EmailMessage) -> None:
        logger.info(
            "email (console backend, not sent)\nFrom: %s\nTo: %s\nSubject: %s\n\n%s",
            message.sender or self.default_sender,
            message.to,
            message.subject,
            message.text,
            extra={"email_to": message.to, "email_subject": message.subject},
        )
