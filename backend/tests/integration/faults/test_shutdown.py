"""SIGTERM under load: a real `app serve` stops the way an orchestrator expects.

Sign-ups made slow on purpose (an expensive password hash, one hash at a time) are in flight
when the server gets SIGTERM: every one of them completes with 201, no connection is dropped,
and the process exits 0 within a bound.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import AppServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IN_FLIGHT = 6
EXIT_WITHIN_SECONDS = 30


def test_sigterm_lets_the_requests_in_flight_finish(tmp_path: Path):
    server = AppServer(
        tmp_path,
        {
            "ENVIRONMENT": "local",  # embedded profile: migrates its own SQLite file
            "LOG_JSON": "true",
            "ARGON2_TIME_COST": "12",  # a few hundred ms per sign-up, one at a time
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
        took = time.monotonic() - signalled
    finally:
        server.stop()

    assert sorted(map(str, answers)) == ["201"] * IN_FLIGHT, answers
    assert code == 0, server.log()[-3000:]
    assert took < EXIT_WITHIN_SECONDS
    assert "Traceback" not in server.log()
    with pytest.raises(httpx.TransportError):  # and it is gone
        httpx.get(f"{server.base_url}/health", timeout=1)
