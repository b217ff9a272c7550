"""The README quick start, for real: `app serve` on the embedded defaults, driven over HTTP.

Starts the installed `app` command as a subprocess in an empty folder (no `.env`), so it
migrates and seeds its own SQLite file, then signs up, logs in and changes the profile with
CSRF, restarts the server and checks the user and the session survived.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

APP = Path(sys.executable).with_name("app")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.extra_env = env or {}
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "ENVIRONMENT", "PYTEST_CURRENT_TEST"}
            and not key.startswith(("CACHE_", "RATE_LIMIT_", "SESSION_", "REDIS_"))
        } | self.extra_env
        self.process = subprocess.Popen(
            [str(APP), "serve", "--port", str(self.port)],
            cwd=self.folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "server.log").open("ab"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"app serve exited: {(self.folder / 'server.log').read_text()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        pytest.fail("app serve did not answer /health within 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(params=["database sessions", "redis sessions"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    env = {}
    if request.param == "redis sessions":
        redis_url = request.getfixturevalue("clean_redis")
        env = {"SESSION_BACKEND": "redis", "REDIS_URL": redis_url}
    running = Server(tmp_path, env)
    running.start()
    yield running
    running.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_quick_start_serves_the_embedded_profile_and_survives_a_restart(server):
    payload = {
        "name": "Alice",
        "username": "alice",
        "email": "alice@example.com",
        "password": "Quiet-Lantern-Orbit-42",
    }
    with httpx.Client(base_url=server.base_url) as browser:
        assert browser.get("/health").json() == {"status": "ok"}
        assert browser.get("/docs").status_code == 200
        assert browser.post("/api/v1/users/", json=payload).status_code == 201
        login = browser.post(
            "/api/v1/auth/login", json={"username": "alice", "password": payload["password"]}
        )
        assert login.status_code == 200
        assert browser.get("/api/v1/users/me/").json()["username"] == "alice"

        unprotected = browser.patch("/api/v1/users/alice", json={"name": "Alice B"})
        assert unprotected.status_code == 403
        token = browser.cookies["csrf_token"]
        changed = browser.patch(
            "/api/v1/users/alice/", json={"name": "Alice B"}, headers={"X-CSRF-Token": token}
        )
        assert changed.status_code == 200
        assert changed.json()["name"] == "Alice B"

        server.stop()
        server.start()

        me = browser.get("/api/v1/users/me/")
        assert me.status_code == 200, "the session did not survive the restart"
        assert me.json()["name"] == "Alice B"
    assert (server.folder / "data" / "app.db").exists()
