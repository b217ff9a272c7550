"""Private servers for fault tests: started on a free port, killed and restarted by the test,
never the shared ones the rest of the suite uses."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, *, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout}s")


class PrivateRedis:
    """A `redis-server` of the test's own, on a free port, storing nothing on disk; or, with
    `persist_dir`, keeping every write in an append-only file there (fsync'd on each write),
    so a restart (even after SIGKILL) finds what it had accepted, as a production broker
    must."""

    def __init__(self, persist_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persist_dir = persist_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence: tuple[str, ...] = ("--appendonly", "no")
        if self.persist_dir is not None:
            self.persist_dir.mkdir(parents=True, exist_ok=True)
            persistence = ("--appendonly", "yes", "--appendfsync", "always")
            persistence += ("--dir", str(self.persist_dir))
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", ""),
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, up=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        _wait_for_port(self.port, up=False)


@contextmanager
def private_redis(persist_dir: Path | None = None) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(persist_dir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
