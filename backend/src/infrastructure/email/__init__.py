"""Outgoing email: an `EmailSender` interface, a console and an SMTP sender.

`get_email_sender()` returns the sender `EMAIL_BACKEND` names (console in development, smtp in
production). Code that sends mail depends on the `EmailSender` protocol only, so a test can
hand it any object with an `async send(message)` method.
"""

from src.infrastructure.email.console import ConsoleEmailSender
from src.infrastructure.email.factory import build_email_sender, get_email_sender
from src.infrastructure.email.message import EmailMessage, EmailSender
from src.infrastructure.email.smtp import SmtpEmailSender

__all__ = [
    "ConsoleEmailSender",
    "EmailMessage",
    "EmailSender",
    "SmtpEmailSender",
    "build_email_sender",
    "get_email_sender",
]
