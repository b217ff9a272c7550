"""Postgres stops under load and comes back: a real `app serve` on a private cluster.

The server (a subprocess on a free port, DATABASE_URL on a Postgres cluster of the test's own,
migrated by `app serve` itself) gets a bounded client loop of session-authenticated reads,
profile reads and sign-ups from a few threads. Postgres is stopped (`pg_ctl stop -m fast`,
which also terminates the connections in use), then started again. Checked:

- never a 500: during the outage every answer is 503 with `Retry-After` and a request id;
- one log line per failed request, carrying its request id (the access log is off, so the
  line is the error handler's), and no traceback in the server's log;
- recovery without restarting the app: after the restart reads and sign-ups succeed again.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import AppServer, PrivatePostgres, private_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "Quiet-Lantern-Orbit-42"
CLIENT_THREADS = 3
REQUESTS_PER_THREAD = 400  # the loop is bounded even if something hangs
OUTAGE_SECONDS = 2.0
RECOVERY_SECONDS = 20.0


@dataclass(frozen=True)
class Answer:
    kind: str
    sent: float
    done: float
    status: int
    retry_after: str | None
    request_id: str | None


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def app_server(postgres: PrivatePostgres, tmp_path: Path) -> Iterator[AppServer]:
    env = {
        "ENVIRONMENT": "development",  # `app serve` migrates and seeds first
        "DATABASE_URL": postgres.url,
        "LOG_JSON": "true",
        "LOG_ACCESS": "false",  # so a failed request's only line is the error handler's
        "COOKIE_SECURE": "false",  # plain http
        "CACHE_ENABLED": "false",  # every read reaches the database
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "RATE_LIMIT_ANONYMOUS": "100000/minute",
        "DATABASE_POOL_SIZE": "5",
        "DATABASE_POOL_TIMEOUT": "1",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_TIME_COST": "1",
    }
    server = AppServer(tmp_path, env)
    server.start()
    yield server
    server.stop()


def _sign_up(client: httpx.Client, username: str) -> httpx.Response:
    payload = {
        "name": "Load",
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
    }
    return client.post("/api/v1/users", json=payload)


class Load:
    """Threads sending reads and sign-ups in turn until stopped (or their bound is reached)."""

    def __init__(self, base_url: str, session_cookie: tuple[str, str]) -> None:
        self.base_url = base_url
        self.session_cookie = session_cookie
        self.answers: list[Answer] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.threads = [
            threading.Thread(target=self._run, args=(n,)) for n in range(CLIENT_THREADS)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, number: int) -> None:
        name, value = self.session_cookie
        with httpx.Client(base_url=self.base_url, timeout=15, cookies={name: value}) as client:
            kinds = itertools.cycle(["me", "profile", "sign-up"])
            for _ in range(REQUESTS_PER_THREAD):
                if self.stopping.is_set():
                    return
                kind = next(kinds)
                sent = time.monotonic()
                try:
                    if kind == "me":
                        response = client.get("/api/v1/users/me")
                    elif kind == "profile":
                        response = client.get("/api/v1/users/owner")
                    else:
                        response = _sign_up(client, f"load_{number}_{next(self.counter)}")
                except httpx.HTTPError as error:  # a dropped connection would be a failure too
                    with self.lock:
                        self.errors.append(error)
                    continue
                answer = Answer(
                    kind,
                    sent,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("Retry-After"),
                    response.headers.get("X-Request-ID"),
                )
                with self.lock:
                    self.answers.append(answer)
                time.sleep(0.01)


def _log_lines(server: AppServer) -> list[dict[str, object]]:
    lines = []
    for raw in server.log().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            lines.append({"raw": raw})
    return lines


def test_postgres_stopped_and_started_under_load(postgres, app_server):
    with httpx.Client(base_url=app_server.base_url, timeout=15) as client:
        assert _sign_up(client, "owner").status_code == 201
        login = client.post("/api/v1/auth/login", json={"username": "owner", "password": PASSWORD})
        assert login.status_code == 200, login.text
        cookie = ("session", client.cookies["session"])

    with Load(app_server.base_url, cookie) as load:
        time.sleep(1.0)
        outage_starts = time.monotonic()
        postgres.stop("fast")
        outage_confirmed = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        restart_begins = time.monotonic()
        postgres.start()
        outage_ends = time.monotonic()
        # Recovery: the same app, not restarted, serves every kind of request again.
        deadline = outage_ends + RECOVERY_SECONDS
        while time.monotonic() < deadline:
            with load.lock:
                recovered = {
                    a.kind for a in load.answers if a.sent > outage_ends and a.status < 300
                }
            if recovered == {"me", "profile", "sign-up"}:
                break
            time.sleep(0.2)
        recovered_at = time.monotonic()
        time.sleep(1.5)  # and keeps serving them

    answers = load.answers
    assert not load.errors, load.errors[:3]
    statuses = {a.status for a in answers}
    assert 500 not in statuses, [a for a in answers if a.status >= 500 and a.status != 503][:5]
    assert statuses <= {200, 201, 503}, statuses

    during = [a for a in answers if a.sent >= outage_confirmed and a.done <= restart_begins]
    assert during, "no request was answered while Postgres was down"
    timeline = [
        (round(a.sent - outage_starts, 3), round(a.done - outage_starts, 3), a.kind, a.status)
        for a in answers
        if abs(a.sent - outage_confirmed) < 0.5
    ]
    for answer in during:
        assert answer.status == 503, (
            answer,
            outage_confirmed - outage_starts,
            timeline,
            [
                line
                for line in _log_lines(app_server)
                if line.get("request_id") == answer.request_id
            ],
            postgres.log.read_text()[-3000:],
        )
    unavailable = [a for a in answers if a.status == 503]
    for answer in unavailable:
        assert answer.retry_after == "1", answer
        assert answer.request_id, answer
    assert {a.kind for a in during} == {"me", "profile", "sign-up"}

    before = [a for a in answers if a.done < outage_starts]
    assert before
    assert all(a.status < 300 for a in before), [a for a in before if a.status >= 300]
    after = [a for a in answers if a.sent > outage_ends]
    assert {a.kind for a in after if a.status < 300} == {"me", "profile", "sign-up"}, (
        "the app did not recover without a restart"
    )
    settled = [a for a in after if a.sent > recovered_at]
    assert settled
    assert all(a.status < 300 for a in settled), [a for a in settled if a.status >= 300][:5]

    log = _log_lines(app_server)
    traces = [line for line in log if "Traceback" in str(line)]
    assert not traces, traces[:2]
    for answer in unavailable:
        # (A task the request committed carries its request id too: only problems count.)
        carrying = [
            line
            for line in log
            if line.get("request_id") == answer.request_id
            and line.get("level") in ("warning", "error", "critical")
        ]
        assert len(carrying) == 1, (answer, carrying)
        assert carrying[0]["level"] == "warning", carrying
    assert not [line for line in log if line.get("level") in ("error", "critical")]
