"""The sender `EMAIL_BACKEND` names."""

from __future__ import annotations

from src.infrastructure.config import Settings, settings
from src.infrastructure.email.console import ConsoleEmailSender
from src.infrastructure.email.message import EmailSender
from src.infrastructure.email.smtp import SmtpEmailSender

# SMTP over implicit TLS ("SMTPS"); every other port starts in clear text (then STARTTLS).
IMPLICIT_TLS_PORT = 465


def build_email_sender(config: Settings) -> EmailSender:
    if config.EMAIL_BACKEND == "smtp":
        implicit_tls = config.SMTP_PORT == IMPLICIT_TLS_PORT
        return SmtpEmailSender(
            host=config.SMTP_HOST,
            port=config.SMTP_PORT,
            default_sender=config.EMAIL_FROM,
            username=config.SMTP_USERNAME,
            password=config.SMTP_PASSWORD.get_secret_value() if config.SMTP_PASSWORD else None,
            starttls=config.SMTP_STARTTLS and not implicit_tls,
            implicit_tls=implicit_tls,
            timeout=config.SMTP_TIMEOUT_SECONDS,
        )
    return ConsoleEmailSender(default_sender=config.EMAIL_FROM)


def get_email_sender() -> EmailSender:
    """The app's sender (a taskiq or FastAPI dependency: override it, not the settings)."""
    return build_email_sender(settings)
