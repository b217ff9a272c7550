"""No task lost: the broker's Redis killed during sign-ups, a worker killed holding a task.

Real processes throughout: `app serve` and `app worker` as subprocesses on the test database,
a private `redis-server` on a free port as the broker (append-only file, fsync'd per write,
as a production broker must run: a restart finds what it had accepted), and an SMTP sink that
counts what it receives. The shared Redis of the suite is never touched.

1. Redis killed during a bounded sign-up loop, then restarted on the same port: every sign-up
   answers 201 before, during and after the outage (its task waits in the outbox), and once
   Redis is back every committed user gets exactly one welcome email, with no process
   restarted.
2. A worker SIGKILLed while one of its tasks is inside the SMTP conversation: a second worker,
   started afterwards with no new traffic at all, runs the task within the configured
   `TASKIQ_REDELIVER_AFTER_SECONDS` (3 s here), and the user still gets exactly one email.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from src.infrastructure.taskiq.outbox import TaskOutbox
from src.modules.user.models import User
from tests.helpers.factories import build_user_create_payload
from tests.helpers.servers import PrivateRedis, free_port, private_redis
from tests.integration.tasks.conftest import welcome_sent_at
from tests.integration.tasks.helpers import AppProcess, SmtpSink, eventually, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

logger = logging.getLogger(__name__)
LISTENING = "Listening started."


@pytest.fixture
def broker_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(persist_dir=tmp_path / "redis") as server:
        yield server


def app_env(redis: PrivateRedis, smtp: SmtpSink, **overrides: str) -> dict[str, str]:
    """The test database, the private Redis as the broker (and nothing else: the cache and
    the rate limits stay in memory, so the broker is the one thing that breaks), mail to the
    sink, short backoffs."""
    return subprocess_env(
        TASKIQ_BROKER="redis",
        REDIS_URL=redis.url,
        TASKIQ_QUEUE_NAME="fault-tasks",
        TASKIQ_RETRY_DELAY_SECONDS="0.2",
        OUTBOX_BACKOFF_BASE_SECONDS="0.2",
        OUTBOX_BACKOFF_MAX_SECONDS="1",
        OUTBOX_POLL_INTERVAL_SECONDS="0.5",
        CACHE_BACKEND="memory",
        RATE_LIMIT_STORAGE="memory",
        RATE_LIMIT_ENABLED="false",
        SESSION_BACKEND="database",
        EMAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_STARTTLS="false",
        LOG_LEVEL="INFO",
        **overrides,
    )


async def committed_users(db_engine: AsyncEngine) -> tuple[int, int]:
    """(users, users whose welcome email is recorded sent)."""
    reader = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with reader.connect() as connection:
        users = await connection.scalar(select(func.count()).select_from(User))
        sent = await connection.scalar(
            select(func.count()).where(User.welcome_email_sent_at.is_not(None))
        )
    return int(users or 0), int(sent or 0)


async def unsent_rows(db_engine: AsyncEngine) -> int:
    reader = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with reader.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(TaskOutbox.sent_at.is_(None)).select_from(TaskOutbox)
        )
    return int(count or 0)


async def wait_healthy(http: httpx.AsyncClient, api: AppProcess) -> None:
    async def up() -> bool:
        try:
            return (await http.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(up, within=60, interval=0.2, explain=api.output)


async def test_sign_ups_during_a_broker_outage_each_get_one_welcome_email(
    db_engine, clean_tables, broker_redis, tmp_path
):
    seen: dict[str, list[int]] = {"before": [], "during": [], "after": []}
    signed_up: list[str] = []
    with SmtpSink() as smtp:
        env = app_env(broker_redis, smtp)
        port = free_port()
        api = AppProcess(["serve", "--port", str(port)], env, tmp_path / "api.log")
        worker = AppProcess(["worker", "--workers", "1"], env, tmp_path / "worker.log")
        try:
            api.start(ready_when="")
            worker.start(ready_when=LISTENING)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
                await wait_healthy(http, api)

                async def sign_up(phase: str) -> None:
                    payload = build_user_create_payload()
                    response = await http.post("/api/v1/users/", json=payload)
                    seen[phase].append(response.status_code)
                    if response.status_code == 201:
                        signed_up.append(payload["email"])

                for _ in range(5):
                    await sign_up("before")
                broker_redis.kill()
                outage_ends = time.monotonic() + 4.0
                while time.monotonic() < outage_ends:  # a bounded loop, by time
                    await sign_up("during")
                pending_at_restart = await unsent_rows(db_engine)
                broker_redis.start()  # same port, same data; nothing else restarts
                restarted = time.monotonic()
                for _ in range(5):
                    await sign_up("after")

            async def all_welcomed() -> bool:
                users, sent = await committed_users(db_engine)
                return users == len(signed_up) and sent == users

            await eventually(
                all_welcomed, within=30, explain=lambda: api.output() + worker.output()
            )
            recovered_in = time.monotonic() - restarted
            await asyncio.sleep(1.0)  # a late duplicate would show up here
        finally:
            worker.stop()
            api.stop()

    assert seen["before"] == [201] * 5
    assert seen["during"]
    assert set(seen["during"]) == {201}, seen["during"]
    assert seen["after"] == [201] * 5
    assert pending_at_restart >= len(seen["during"])  # they waited in the outbox
    for email in signed_up:
        assert len(smtp.sent_to(email)) == 1, email
    assert len(smtp.received) == len(signed_up)
    assert await unsent_rows(db_engine) == 0
    logger.warning(
        "broker outage: %d sign-ups during 4 s, all welcomed %.1f s after the restart",
        len(seen["during"]),
        recovered_in,
    )


class HoldingSmtpSink(SmtpSink):
    """Holds the first message in the DATA phase (never accepting it) until released: the
    worker sending it is stuck mid-task, with its message unacknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.released = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.attempts:
            self.attempts += 1
            self.holding = True
            while not self.released:  # noqa: ASYNC110 - set from the test's thread
                await asyncio.sleep(0.05)
            return "451 4.3.0 Held, never accepted"
        return await super().handle_DATA(server, session, envelope)


async def test_a_task_held_by_a_killed_worker_runs_again_without_new_traffic(
    db_engine, committed_client, broker_redis, tmp_path
):
    redeliver_after = 3.0
    with HoldingSmtpSink() as smtp:
        env = app_env(broker_redis, smtp, TASKIQ_REDELIVER_AFTER_SECONDS=str(redeliver_after))
        first = AppProcess(["worker", "--workers", "1"], env, tmp_path / "worker1.log")
        second = AppProcess(["worker", "--workers", "1"], env, tmp_path / "worker2.log")
        try:
            first.start(ready_when=LISTENING)
            payload = build_user_create_payload()
            response = await committed_client.post("/api/v1/users/", json=payload)
            assert response.status_code == 201
            user_id = response.json()["id"]

            async def held() -> bool:
                return smtp.holding

            # The first worker's relay published the task and the worker is inside it.
            await eventually(held, within=20, explain=first.output)
            first.kill()
            killed = time.monotonic()
            second.start(ready_when=LISTENING)  # no request, no task sent from here on

            async def welcomed() -> bool:
                return bool(smtp.sent_to(payload["email"]))

            await eventually(welcomed, within=30, explain=second.output)
            rerun_after = time.monotonic() - killed
            await asyncio.sleep(1.0)  # a late duplicate would show up here
        finally:
            smtp.released = True
            first.kill()
            second.stop()

    assert len(smtp.sent_to(payload["email"])) == 1
    assert await welcome_sent_at(db_engine, user_id) is not None
    assert "delivered again" in second.output()
    # The reclaim timer runs every redeliver_after / 4; a worker's start-up takes a few s.
    assert rerun_after < redeliver_after * 1.25 + 15, rerun_after
    logger.warning("killed worker's task ran again %.1f s after the kill", rerun_after)
