"""`app serve --workers 2`: a role given or taken by another process applies on every worker
from the next request.

Permissions are read with the caller in the one lookup query and cached nowhere, so no worker
can keep serving a permission that was taken away. The change is made by a third process
(`app roles`, as an operator would), the requests go on fresh connections (spread over both
workers) with the session cookie and with an API key.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import APP, AppServer
from tests.integration.faults.test_api_key_workers import (  # the same server and browser
    _session,
    database_url,
    server,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["database_url", "server"]  # fixtures

REQUESTS = 40
USERS = "/api/v1/users"


def _app(server: AppServer, *args: str) -> None:
    done = subprocess.run(
        [str(APP), *args], env=server.env, cwd=server.folder, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _statuses(base_url: str, *, cookies: dict[str, str], headers: dict[str, str]) -> list[int]:
    """`REQUESTS` reads of the user list, each on a fresh connection (so both workers answer)."""

    def read(_: int) -> int:
        with httpx.Client(base_url=base_url, timeout=30, cookies=cookies) as fresh:
            return fresh.get(USERS, headers=headers).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(read, range(REQUESTS)))


def test_a_role_given_or_taken_by_another_process_applies_on_every_worker(server: AppServer):
    browser = _session(server.base_url)
    try:
        key = browser.post("/api/v1/api-keys", json={"name": "ro"}).json()["key"]
        session = {"session": browser.cookies["session"]}
        by_session = {"cookies": session, "headers": {}}
        by_key = {"cookies": {}, "headers": {"X-API-Key": key}}
        for caller in (by_session, by_key):
            assert _statuses(server.base_url, **caller) == [403] * REQUESTS

        _app(server, "roles", "create", "readers", "-p", "user.read")
        _app(server, "roles", "assign", "keyowner", "readers")
        for caller in (by_session, by_key):
            assert _statuses(server.base_url, **caller) == [200] * REQUESTS

        _app(server, "roles", "assign", "keyowner", "readers", "--remove")
        for caller in (by_session, by_key):
            assert _statuses(server.base_url, **caller) == [403] * REQUESTS
        [folder_line] = [
            line for line in server.output().splitlines() if line.startswith("metrics of the")
        ]
        writers = {path.name for path in Path(folder_line.rsplit(" ", 1)[1]).glob("counter_*.db")}
    finally:
        browser.close()

    assert len(writers) >= 2, writers  # both workers answered
    assert "Traceback" not in server.log()
