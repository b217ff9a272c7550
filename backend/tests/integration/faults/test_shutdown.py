"""SIGTERM under load: a real `app serve` stops the way an orchestrator expects.

On a private Postgres, sign-ups made slow on purpose (an expensive password hash, one hash at
a time) are in flight when the server gets SIGTERM: every one of them completes with 201, no
connection is dropped, and the process exits 0 within a bound.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import AppServer, private_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IN_FLIGHT = 6
EXIT_WITHIN_SECONDS = 90  # the slow requests included (a busy 2-core machine)
EXIT_AFTER_LAST_ANSWER_SECONDS = 15


@pytest.fixture
def database_url() -> Iterator[str]:
    """The production profile's database, a private Postgres (SQLite would serialise the
    concurrent sign-ups on its write lock, which is not what this test is about)."""
    with private_postgres() as postgres:
        yield postgres.url


def test_sigterm_lets_the_requests_in_flight_finish(tmp_path: Path, database_url: str):
    server = AppServer(
        tmp_path,
        {
            "ENVIRONMENT": "development",  # migrates the database first
            "DATABASE_URL": database_url,
            "COOKIE_SECURE": "false",
            "LOG_JSON": "true",
            "ARGON2_TIME_COST": "8",  # a few hundred ms per sign-up, one at a time
            "PASSWORD_HASH_THREADS": "1",
            "RATE_LIMIT_ANONYMOUS": "10000/minute",
        },
    )
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:  # warm: first hash
            warm = {"name": "W", "username": "warm", "email": "warm@example.com"}
            warm["password"] = "Quiet-Lantern-Orbit-42"
            assert client.post("/api/v1/users", json=warm).status_code == 201
        answers: list[int | str] = []
        answered: list[float] = []
        lock = threading.Lock()
        sent = threading.Barrier(IN_FLIGHT + 1)

        def sign_up(number: int) -> None:
            payload = {
                "name": "Late",
                "username": f"late_{number}",
                "email": f"late_{number}@example.com",
                "password": "Quiet-Lantern-Orbit-42",
            }
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                sent.wait()
                try:
                    status: int | str = client.post("/api/v1/users", json=payload).status_code
                except httpx.HTTPError as error:
                    status = f"{type(error).__name__}: {error}"
            with lock:
                answers.append(status)
                answered.append(time.monotonic())

        threads = [threading.Thread(target=sign_up, args=(n,)) for n in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        sent.wait()
        time.sleep(0.5)  # the requests were read and wait for their hash
        signalled = time.monotonic()
        server.terminate()

        for thread in threads:
            thread.join(timeout=EXIT_WITHIN_SECONDS)
        try:
            code = server.wait(timeout=EXIT_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"app serve still running {EXIT_WITHIN_SECONDS}s after SIGTERM")
        exited = time.monotonic()
    finally:
        server.stop()

    errors = [line for line in server.log().splitlines() if '"level":"error"' in line]
    assert sorted(map(str, answers)) == ["201"] * IN_FLIGHT, (answers, errors[:2])
    assert code == 0, server.log()[-3000:]
    assert exited - signalled < EXIT_WITHIN_SECONDS
    assert exited - max(answered) < EXIT_AFTER_LAST_ANSWER_SECONDS
    assert "Traceback" not in server.log()
    with pytest.raises(httpx.TransportError):  # and it is gone
        httpx.get(f"{server.base_url}/health", timeout=1)
