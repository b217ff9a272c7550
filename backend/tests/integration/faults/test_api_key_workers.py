"""`app serve --workers 2`: a revoked, deactivated or expired API key gets 401 on every process.

Keys are resolved with one query per request and no cache, so no worker can keep accepting a
key another worker's request revoked. The server runs on a database of the test's own (a
fresh Postgres database on the `TEST_DATABASE_URL` server, or a temporary SQLite file); a
user, a session and two keys are made over real HTTP; each key is used on fresh connections
(spread over both workers), then revoked (DELETE) or deactivated (PATCH `is_active: false`)
through the session, or created to expire in a few seconds, after which every request with
it is a 401.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers.database import configured_url, drop_database, is_sqlite, recreate_database
from tests.helpers.servers import AppServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 40
KEYS = "/api/v1/api-keys"
ME = "/api/v1/users/me"
PASSWORD = "Quiet-Lantern-Orbit-42"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own on the profile's server (or a SQLite file)."""
    from sqlalchemy.engine import make_url

    url = make_url(configured_url()[0])
    if is_sqlite(url):
        yield f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        return
    url = url.set(database=f"apikey_workers_{os.getpid()}")
    asyncio.run(recreate_database(url))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(drop_database(url))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[AppServer]:
    env = {
        "ENVIRONMENT": "development",  # `app serve` migrates and seeds first
        "DATABASE_URL": database_url,
        "LOG_ACCESS": "false",
        "COOKIE_SECURE": "false",  # plain http
        "CACHE_ENABLED": "false",
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_ANONYMOUS": "100000/minute",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_TIME_COST": "1",
    }
    folder = tmp_path / "server"
    folder.mkdir()
    app_server = AppServer(folder, env, workers=2)
    app_server.start()
    try:
        yield app_server
    finally:
        app_server.stop()


def _session(base_url: str) -> httpx.Client:
    """A signed-up, logged-in browser: session cookie, and the CSRF token echoed."""
    client = httpx.Client(base_url=base_url, timeout=30)
    user = {"name": "Key Owner", "username": "keyowner", "email": "keyowner@example.com"}
    signed_up = client.post("/api/v1/users", json={**user, "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    logged_in = client.post(
        "/api/v1/auth/login", json={"username": user["username"], "password": PASSWORD}
    )
    assert logged_in.status_code == 200, logged_in.text
    if client.cookies.get("csrf_token") is None:
        client.get("/health")
    client.headers["X-CSRF-Token"] = client.cookies["csrf_token"]
    return client


def _statuses(base_url: str, key: str) -> list[int]:
    """`REQUESTS` reads with the key, each on a fresh connection (so both workers answer)."""

    def read(_: int) -> int:
        with httpx.Client(base_url=base_url, timeout=30) as fresh:
            return fresh.get(ME, headers={"X-API-Key": key}).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(read, range(REQUESTS)))


def test_a_revoked_deactivated_or_expired_key_is_refused_by_every_worker(server: AppServer):
    browser = _session(server.base_url)
    try:
        made = {}
        expiry = datetime.now(UTC) + timedelta(seconds=30)
        for name in ("revoked", "deactivated", "expiring"):
            body = {"name": name} | (
                {"expires_at": expiry.isoformat()} if name == "expiring" else {}
            )
            created = browser.post(KEYS, json=body)
            assert created.status_code == 201, created.text
            made[name] = created.json()
        for created in made.values():
            assert set(_statuses(server.base_url, created["key"])) == {200}

        revoked = browser.delete(f"{KEYS}/{made['revoked']['id']}")
        assert revoked.status_code == 204, revoked.text
        assert _statuses(server.base_url, made["revoked"]["key"]) == [401] * REQUESTS
        # The other key still works everywhere: the refusal is the revoked key's alone.
        assert set(_statuses(server.base_url, made["deactivated"]["key"])) == {200}

        deactivated = browser.patch(
            f"{KEYS}/{made['deactivated']['id']}", json={"is_active": False}
        )
        assert deactivated.status_code == 200, deactivated.text
        assert deactivated.json()["is_active"] is False
        assert _statuses(server.base_url, made["deactivated"]["key"]) == [401] * REQUESTS

        time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.5)
        assert _statuses(server.base_url, made["expiring"]["key"]) == [401] * REQUESTS
        [folder_line] = [
            line for line in server.output().splitlines() if line.startswith("metrics of the")
        ]
        writers = {path.name for path in Path(folder_line.rsplit(" ", 1)[1]).glob("counter_*.db")}
    finally:
        browser.close()

    assert len(writers) >= 2, writers  # both workers answered (their request counters)
    assert "Traceback" not in server.log()
