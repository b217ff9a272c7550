"""Two uvicorn worker processes on Redis share one limit (`app serve --workers 2`).

Each request is sent on a connection whose owning worker process is known (found with psutil
from the connection's port), alternating between the two workers, so the test proves that
both processes served requests and counted against the same budget: with a per-process store
each worker would let its own 10 through.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from http.client import HTTPConnection, HTTPResponse
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.integration.rate_limit.helpers import add_rule, user_on_tier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = Path(sys.executable).with_name("app")
AUTH_ME = "/api/v1/auth/me"
ANONYMOUS_LIMIT = 10
PRO_LIMIT = 7


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`app serve --workers 2` as a subprocess, with connections pinned to each worker."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.port = _free_port()
        self.log = folder / "server.log"
        self.process = subprocess.Popen(
            [str(APP), "serve", "--port", str(self.port), "--workers", "2"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
        )

    def wait_until_up(self) -> None:
        """Until both workers have finished their start-up (each logs it once)."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"app serve exited:\n{self.log.read_text()}")
            if self.log.read_text().count("Application startup complete") >= 2:
                return
            time.sleep(0.2)
        pytest.fail(f"app serve --workers 2 did not start:\n{self.log.read_text()}")

    def workers(self) -> list[int]:
        """The child processes that listen on the server's port (not, say, the resource
        tracker of multiprocessing)."""
        pids = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                connections = child.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections
            ):
                pids.append(child.pid)
        return pids

    def owner(self, connection: HTTPConnection) -> int | None:
        """The worker process that accepted `connection` (it holds the server end)."""
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for pid in self.workers():
                try:
                    connections = psutil.Process(pid).net_connections(kind="tcp")
                except psutil.NoSuchProcess:
                    continue
                for conn in connections:
                    if conn.raddr and conn.raddr.port == client_port:
                        return pid
            time.sleep(0.02)
        return None

    def connection_per_worker(self) -> list[HTTPConnection]:
        """One open keep-alive connection to each of the two workers (the kernel hands each
        new connection to whichever worker accepts first, so open until both have one)."""
        pinned: dict[int, HTTPConnection] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            connection = HTTPConnection("127.0.0.1", self.port, timeout=10)
            connection.connect()
            pid = self.owner(connection)
            if pid is not None and pid not in pinned:
                pinned[pid] = connection
                if len(pinned) == 2:
                    return list(pinned.values())
            else:
                connection.close()
        for connection in pinned.values():
            connection.close()
        pytest.fail("could not reach both worker processes within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
                self.process.kill()


def _request(
    connection: HTTPConnection, method: str, path: str, *, body: Any = None, **headers: str
) -> HTTPResponse:
    payload = json.dumps(body) if body is not None else None
    if payload is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


@pytest_asyncio.fixture
async def server(
    tmp_path: Path, redis_url: str, db_engine: AsyncEngine, clean_tables: None
) -> AsyncIterator[tuple[Server, dict[str, Any]]]:
    # Seeded with real commits (the server is another process); clean_tables empties them.
    async with AsyncSession(db_engine, expire_on_commit=False) as db:
        pro_user = await user_on_tier(db, "pro")
        await add_rule(db, "pro", AUTH_ME, PRO_LIMIT, 3600)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env |= {
        "ENVIRONMENT": "pytest",  # no .env, no migrations at start (the schema exists)
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": redis_url,
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_STORAGE": "redis",
        "RATE_LIMIT_ANONYMOUS": f"{ANONYMOUS_LIMIT}/hour",
        "RATE_LIMIT_DEFAULT": "100/hour",
        "TRUSTED_PROXY_HOPS": "1",
        "LOG_ACCESS": "false",
    }
    running = Server(tmp_path, env)
    try:
        running.wait_until_up()
        yield running, pro_user
    finally:
        running.stop()


async def test_two_workers_on_redis_share_the_limit(server, clean_redis):
    running, pro_user = server

    def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]], str]:
        first, second = running.connection_per_worker()
        try:
            # Anonymous: one client (as its proxy reports it), alternating between workers.
            anonymous = [
                _request(conn, "GET", AUTH_ME, **{"X-Forwarded-For": "198.51.100.10"})
                for conn in [first, second] * ANONYMOUS_LIMIT
            ]
            # Signed in on the "pro" tier, whose rule for this route is stored in the database.
            login = _request(
                first,
                "POST",
                "/api/v1/auth/login",
                body={"username": pro_user["username"], "password": pro_user["password"]},
                **{"X-Forwarded-For": "198.51.100.20"},
            )
            cookie = SimpleCookie(login.getheader("Set-Cookie", ""))
            session = "; ".join(f"{k}={m.value}" for k, m in cookie.items())
            signed_in = [
                _request(conn, "GET", AUTH_ME, Cookie=session)
                for conn in [first, second] * PRO_LIMIT
            ]
            limit_header = signed_in[0].getheader("X-RateLimit-Limit") or ""
        finally:
            first.close()
            second.close()

        def summary(responses: list[HTTPResponse]) -> list[tuple[int, int]]:
            return [(index % 2, response.status) for index, response in enumerate(responses)]

        assert login.status == 200
        return summary(anonymous), summary(signed_in), limit_header

    import asyncio

    anonymous, signed_in, pro_limit_header = await asyncio.to_thread(scenario)

    assert sum(status == 200 for _, status in anonymous) == ANONYMOUS_LIMIT
    assert sum(status == 429 for _, status in anonymous) == ANONYMOUS_LIMIT
    # Both workers served some of the allowed requests and refused some of the rest.
    for worker in (0, 1):
        assert {status for w, status in anonymous if w == worker} == {200, 429}
    assert [status for _, status in signed_in] == [200] * PRO_LIMIT + [429] * PRO_LIMIT
    assert pro_limit_header == str(PRO_LIMIT)
