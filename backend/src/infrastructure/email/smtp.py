"""Production sender: SMTP through aiosmtplib (STARTTLS, credentials, timeout)."""

from __future__ import annotations

import ssl

import aiosmtplib

from src.infrastructure.email.message import EmailMessage


class SmtpEmailSender:
    """One SMTP connection per message: nothing to keep alive between tasks.

    `starttls=True` refuses to send when the server cannot upgrade the connection, so
    credentials and mail never cross the network in clear text. Port 465 (implicit TLS) is
    spoken when `implicit_tls` is set.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        default_sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        implicit_tls: bool = False,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        self.host = host
        self.port = port
        self.default_sender = default_sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.timeout = timeout
        self.tls_context = tls_context

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message.to_mime(self.default_sender),
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            use_tls=self.implicit_tls,
            timeout=self.timeout,
            tls_context=self.tls_context,
        )
