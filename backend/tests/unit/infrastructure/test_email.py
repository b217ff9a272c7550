"""Email messages, the console sender and choosing a sender from the settings (no server)."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from src.infrastructure.config import settings
from src.infrastructure.email import (
    ConsoleEmailSender,
    EmailMessage,
    SmtpEmailSender,
    build_email_sender,
    get_email_sender,
)


@pytest.mark.unit
def test_message_becomes_a_mime_message_with_an_html_alternative():
    mime = EmailMessage(
        to="a@example.com", subject="Hi", text="plain body", html="<p>html body</p>"
    ).to_mime("from@example.com")
    assert mime["From"] == "from@example.com"
    assert mime["To"] == "a@example.com"
    assert mime["Subject"] == "Hi"
    assert mime.get_content_type() == "multipart/alternative"
    assert mime.get_body(("plain",)).get_content().strip() == "plain body"
    assert mime.get_body(("html",)).get_content().strip() == "<p>html body</p>"


@pytest.mark.unit
def test_an_explicit_sender_wins():
    mime = EmailMessage(to="a@example.com", subject="s", text="t", sender="me@example.com")
    assert mime.to_mime("default@example.com")["From"] == "me@example.com"


@pytest.mark.unit
async def test_console_sender_logs_the_whole_email(caplog):
    sender = ConsoleEmailSender(default_sender="no-reply@example.com")
    with caplog.at_level(logging.INFO, logger="src.infrastructure.email"):
        await sender.send(EmailMessage(to="bob@example.com", subject="Welcome", text="Hello Bob"))
    [record] = [r for r in caplog.records if r.name.startswith("src.infrastructure.email")]
    logged = record.getMessage()
    assert "To: bob@example.com" in logged
    assert "Subject: Welcome" in logged
    assert "Hello Bob" in logged


@pytest.mark.unit
def test_the_settings_choose_the_sender():
    assert isinstance(get_email_sender(), ConsoleEmailSender)  # EMAIL_BACKEND=console default
    smtp = build_email_sender(
        settings.model_copy(
            update={
                "EMAIL_BACKEND": "smtp",
                "SMTP_HOST": "mail.example.com",
                "SMTP_PORT": 587,
                "SMTP_USERNAME": "user",
                "SMTP_PASSWORD": SecretStr("secret"),
                "SMTP_TIMEOUT_SECONDS": 3.0,
            }
        )
    )
    assert isinstance(smtp, SmtpEmailSender)
    assert (smtp.host, smtp.port, smtp.username, smtp.password) == (
        "mail.example.com",
        587,
        "user",
        "secret",
    )
    assert smtp.starttls is True
    assert smtp.implicit_tls is False
    assert smtp.timeout == 3.0
    assert smtp.default_sender == settings.EMAIL_FROM


@pytest.mark.unit
def test_port_465_means_implicit_tls():
    smtp = build_email_sender(
        settings.model_copy(update={"EMAIL_BACKEND": "smtp", "SMTP_PORT": 465})
    )
    assert isinstance(smtp, SmtpEmailSender)
    assert (smtp.implicit_tls, smtp.starttls) == (True, False)


@pytest.mark.unit
def test_starttls_and_implicit_tls_exclude_each_other():
    with pytest.raises(ValueError, match="STARTTLS"):
        SmtpEmailSender(
            host="h", port=1, default_sender="f@example.com", starttls=True, implicit_tls=True
        )
