"""Real servers and processes for the task tests: an SMTP server that keeps what it receives,
`app worker` / `app scheduler` subprocesses, and a bounded wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

APP = Path(sys.executable).with_name("app")
BACKEND_DIR = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    within: float = 30.0,
    interval: float = 0.1,
    explain: Callable[[], str] = str,
) -> T:
    """Call `probe` until it returns something truthy; fail after `within` seconds, with
    `explain()` (say, a subprocess's output) in the message."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {within} s (last: {value!r})\n{explain()}")
        await asyncio.sleep(interval)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None
    tls: bool


class SmtpSink:
    """A real SMTP server (aiosmtpd, in a thread of its own) that keeps what it accepts.

    `fail_first=n` answers the first n messages with `451 try again later` (a temporary
    failure). With `tls_context` the server requires STARTTLS; with `credentials` it requires
    AUTH with them.
    """

    def __init__(
        self,
        *,
        fail_first: int = 0,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.received: list[Received] = []
        self.credentials = credentials
        self.port = free_port()
        options: dict[str, Any] = {}
        if tls_context is not None:
            options |= {"tls_context": tls_context, "require_starttls": True}
        if credentials is not None:
            options |= {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": tls_context is not None,
            }
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.credentials == (
            data.login.decode(),
            data.password.decode(),
        )
        if not ok:  # not handled: the server answers 535 itself
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data.login.decode())

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return "451 4.3.0 Temporary failure, try again later"
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message=message_from_bytes(envelope.content),
                login=session.auth_data,
                tls=session.ssl is not None,
            )
        )
        return "250 Message accepted for delivery"

    def sent_to(self, address: str) -> list[Received]:
        return [mail for mail in self.received if address in mail.rcpt_tos]


def self_signed_tls(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1, made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


class AppProcess:
    """`app <command>` as a real subprocess, its output in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args = [str(APP), *args]
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_when: str, timeout: float = 60.0) -> AppProcess:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.args,
                cwd=BACKEND_DIR,
                env=self.env,
                stdout=output,
                stderr=output,
                start_new_session=True,  # its own process group: `kill()` reaches its children
            )
        self.wait_for_output(ready_when, timeout=timeout)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_output(self, text: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.args} exited:\n{self.output()}")
            if time.monotonic() > deadline:
                message = f"no {text!r} from {self.args} in {timeout} s:\n{self.output()}"
                raise AssertionError(message)
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the command and every process it started (a crash: no cleanup at all)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._kill_leftovers()
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        """A child still running after its parent exited must not outlive the test (it would
        keep working on the test database)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def subprocess_env(**overrides: str) -> dict[str, str]:
    """This process's environment (the test database and Redis) plus `overrides`."""
    return {**os.environ, **overrides}
