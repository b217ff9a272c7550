"""`SmtpEmailSender` against a real SMTP server (aiosmtpd) started by the test."""

from __future__ import annotations

import socket
import time

import aiosmtplib
import pytest

from src.infrastructure.email import EmailMessage, SmtpEmailSender
from tests.integration.tasks.helpers import SmtpSink, self_signed_tls

MAIL = EmailMessage(to="carol@example.com", subject="Hello Carol", text="Plain words.")


def _sender(port: int, **options) -> SmtpEmailSender:
    options.setdefault("starttls", False)
    return SmtpEmailSender(
        host="127.0.0.1", port=port, default_sender="app@example.com", timeout=5, **options
    )


@pytest.mark.integration
async def test_delivers_the_message():
    with SmtpSink() as server:
        await _sender(server.port).send(MAIL)

    [mail] = server.sent_to("carol@example.com")
    assert mail.mail_from == "app@example.com"
    assert mail.message["Subject"] == "Hello Carol"
    assert mail.message["To"] == "carol@example.com"
    assert mail.message.get_payload(decode=True).decode().strip() == "Plain words."


@pytest.mark.integration
async def test_starttls_with_credentials(tmp_path):
    server_tls, client_tls = self_signed_tls(tmp_path)
    with SmtpSink(tls_context=server_tls, credentials=("mailer", "s3cret")) as server:
        sender = _sender(
            server.port,
            starttls=True,
            tls_context=client_tls,
            username="mailer",
            password="s3cret",
        )
        await sender.send(MAIL)

    [mail] = server.sent_to("carol@example.com")
    assert mail.tls is True
    assert mail.login == "mailer"


@pytest.mark.integration
async def test_wrong_credentials_are_refused(tmp_path):
    server_tls, client_tls = self_signed_tls(tmp_path)
    with SmtpSink(tls_context=server_tls, credentials=("mailer", "s3cret")) as server:
        sender = _sender(
            server.port, starttls=True, tls_context=client_tls, username="mailer", password="x"
        )
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await sender.send(MAIL)
    assert server.received == []


@pytest.mark.integration
async def test_starttls_required_but_not_offered_sends_nothing_in_clear_text():
    with (
        SmtpSink() as server,  # no TLS on this server
        pytest.raises(aiosmtplib.SMTPException, match=r"(?i)starttls"),
    ):
        await _sender(server.port, starttls=True).send(MAIL)
    assert server.received == []


@pytest.mark.integration
async def test_a_temporary_failure_raises_so_the_task_is_retried():
    with SmtpSink(fail_first=1) as server:
        with pytest.raises(aiosmtplib.SMTPDataError) as error:
            await _sender(server.port).send(MAIL)
        assert error.value.code == 451
        await _sender(server.port).send(MAIL)  # the retry goes through
    assert len(server.sent_to("carol@example.com")) == 1


@pytest.mark.integration
async def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        sender = SmtpEmailSender(
            host="127.0.0.1", port=port, default_sender="a@example.com", starttls=False, timeout=1
        )
        started = time.monotonic()
        with pytest.raises(aiosmtplib.SMTPTimeoutError):
            await sender.send(MAIL)
    assert time.monotonic() - started < 5
