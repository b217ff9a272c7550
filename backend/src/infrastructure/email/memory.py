"""A sender that keeps messages in a list: for tests and demos that read what was sent."""

from __future__ import annotations

from src.infrastructure.email.message import EmailMessage


class MemoryEmailSender:
    def __init__(self) -> None:
        self.outbox: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.outbox.append(message)

    def sent_to(self, address: str) -> list[EmailMessage]:
        """The messages sent to `address`, oldest first."""
        return [message for message in self.outbox if message.to == address]
