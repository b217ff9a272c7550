"""What an email is, and what sends one."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None
    sender: str | None = None  # None: EMAIL_FROM

    def to_mime(self, default_sender: str) -> MimeMessage:
        """The RFC 5322 message (plain text, plus an HTML alternative when there is one)."""
        mime = MimeMessage()
        mime["From"] = self.sender or default_sender
        mime["To"] = self.to
        mime["Subject"] = self.subject
        mime.set_content(self.text)
        if self.html is not None:
            mime.add_alternative(self.html, subtype="html")
        return mime


class EmailSender(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` or raise (the calling task retries)."""
        ...
