"""Outgoing email: an `EmailSender` interface, a console and an SMTP sender.

`get_email_sender()` returns the sender `EMAIL_BACKEND` names (console in development, smtp in
production). Code that sends mail depends on the `EmailSender` protocol only, so a test can
hand it any object with an `async send(message)` method. `render_email` builds a message from
the templates in `src/templates/email/`.
"""

from src.infrastructure.email.console import ConsoleEmailSender
from src.infrastructure.email.factory import build_email_sender, get_email_sender
from src.infrastructure.email.memory import MemoryEmailSender
from src.infrastructure.email.message import EmailMessage, EmailSender
from src.infrastructure.email.smtp import SmtpEmailSender
from src.infrastructure.email.templates import describe_duration, render_email

__all__ = [
    "ConsoleEmailSender",
    "EmailMessage",
    "EmailSender",
    "MemoryEmailSender",
    "SmtpEmailSender",
    "build_email_sender",
    "describe_duration",
    "get_email_sender",
    "render_email",
]
