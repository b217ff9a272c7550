"""The task outbox: rows written in the caller's transaction (and rolled back with it), a relay
that publishes them and marks them sent only once the broker took them, backs off while the
broker refuses (logging once), and consumers that run a task id once."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from sqlalchemy import func, select

from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.database.session import get_sessionmaker
from src.infrastructure.taskiq import build_broker, outbox
from src.infrastructure.taskiq.brokers import drain
from src.infrastructure.taskiq.outbox import OutboxRelay, TaskOutbox, describe_error
from src.infrastructure.taskiq.testing import RecordingBroker
from src.modules.user.tasks import send_welcome_email
from tests.helpers.factories import build_user_create_payload
from tests.helpers.outbox import make_due, outbox_rows

pytestmark = pytest.mark.integration


async def test_a_row_commits_with_its_transaction_and_rolls_back_with_it(clean_tables, db_engine):
    async with get_sessionmaker()() as db:
        await outbox.add(db, send_welcome_email, 1)
        await db.rollback()
        kept = await outbox.add(db, send_welcome_email, 2)
        assert await outbox_rows(db_engine) == []  # not committed: invisible elsewhere
        await db.commit()

    [row] = await outbox_rows(db_engine)
    assert row["id"] == kept
    assert row["args"] == [2]
    assert row["task_name"] == "user.send_welcome_email"


async def test_a_sign_up_that_conflicts_leaves_no_task(committed_client, db_engine):
    payload = build_user_create_payload()
    assert (await committed_client.post("/api/v1/users/", json=payload)).status_code == 201
    assert (await committed_client.post("/api/v1/users/", json=payload)).status_code == 409
    assert len(await outbox_rows(db_engine, send_welcome_email)) == 1


async def test_the_relay_publishes_with_the_row_id_and_marks_sent(committed_client, db_engine):
    response = await committed_client.post(
        "/api/v1/users/", json=build_user_create_payload(), headers={"X-Request-ID": "req-7"}
    )
    recorder = RecordingBroker()
    relay = OutboxRelay(recorder)

    assert await relay.run_once() == 1
    assert await relay.run_once() == 0  # sent: never again
    [message] = recorder.sent_to(send_welcome_email)
    [row] = await outbox_rows(db_engine)
    assert message.task_id == row["id"]
    assert message.args == [response.json()["id"]]
    assert message.labels["request_id"] == "req-7"
    assert str(message.labels[outbox.OUTBOX_LABEL]) == "True"
    assert row["sent_at"] is not None
    assert row["next_attempt_at"] is None


async def test_a_refusing_broker_backs_off_per_row_and_loses_nothing(
    committed_client, db_engine, caplog
):
    for _ in range(2):
        await committed_client.post("/api/v1/users/", json=build_user_create_payload())
    down = build_broker(TASKIQ_BROKER="redis", REDIS_URL="redis://user:hunter2@127.0.0.1:1/0")
    relay = OutboxRelay(down)
    try:
        with caplog.at_level(logging.WARNING, logger="src.infrastructure.taskiq.outbox"):
            assert await relay.run_once() == 0
            assert await relay.run_once() == 0  # backing off: nothing due, nothing tried
            await make_due(db_engine)
            assert await relay.run_once() == 0  # refused again: still one warning
    finally:
        await down.shutdown()

    rows = await outbox_rows(db_engine)
    first, second = rows
    assert first["attempts"] == 2  # the one tried each time
    assert second["attempts"] == 0  # waited with it: the broker was down
    assert all(row["sent_at"] is None and row["next_attempt_at"] > utcnow() for row in rows)
    assert "ConnectionError" in first["last_error"]
    assert "hunter2" not in first["last_error"]
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1

    # The broker is back: everything goes, nothing lost.
    await make_due(db_engine)
    recorder = RecordingBroker()
    assert await OutboxRelay(recorder).run_once() == 2
    assert {m.task_id for m in recorder.messages} == {row["id"] for row in rows}


def test_backoff_doubles_up_to_the_maximum():
    config = settings.model_copy(
        update={"OUTBOX_BACKOFF_BASE_SECONDS": 1.0, "OUTBOX_BACKOFF_MAX_SECONDS": 10.0}
    )
    delays = [outbox.backoff_seconds(n, config) for n in (1, 2, 3, 4, 5, 6)]
    for delay, expected in zip(delays, (1, 2, 4, 8, 10, 10), strict=True):
        assert expected <= delay <= expected * 1.1
    assert describe_error(OSError("amqp://guest:s3cret@host/")) == "OSError: amqp://***@host/"


async def test_a_task_id_delivered_twice_runs_once(clean_tables, db_engine, caplog):
    broker = build_broker(TASKIQ_BROKER="memory")
    effects: list[str] = []

    @broker.task(task_name="tests.outbox.effect")
    async def effect(name: str) -> None:
        effects.append(name)

    async with get_sessionmaker()() as db:
        await outbox.add(db, effect, "once")
        await db.commit()
    await drain(broker)  # published and run
    # As if the relay died after publishing, before marking the row sent: it goes again.
    async with db_engine.begin() as connection:
        await connection.execute(
            TaskOutbox.__table__.update().values(sent_at=None, next_attempt_at=utcnow())
        )
    with caplog.at_level(logging.INFO, logger="src.infrastructure.taskiq.outbox"):
        assert await OutboxRelay(broker).run_once() == 1
        await drain(broker)

    assert effects == ["once"]
    assert "already done: delivered again, not run" in caplog.text
    [row] = await outbox_rows(db_engine)
    assert row["done_at"] is not None


async def test_a_failed_run_is_not_recorded_done(clean_tables, db_engine):
    broker = build_broker(TASKIQ_BROKER="memory")

    @broker.task(task_name="tests.outbox.fails", retry_on_error=False)
    async def fails() -> None:
        raise RuntimeError("no")

    async with get_sessionmaker()() as db:
        await outbox.add(db, fails)
        await db.commit()
    await drain(broker)
    [row] = await outbox_rows(db_engine)
    assert row["sent_at"] is not None
    assert row["done_at"] is None


async def test_a_commit_wakes_the_running_relay_at_once(clean_tables, db_engine):
    recorder = RecordingBroker()
    slow_poll = settings.model_copy(update={"OUTBOX_POLL_INTERVAL_SECONDS": 30.0})
    relay = OutboxRelay(recorder, config=slow_poll)
    relay.start()
    try:
        await asyncio.sleep(0.2)  # its first pass found nothing; it waits up to 30 s now
        async with get_sessionmaker()() as db:
            await outbox.add(db, send_welcome_email, 1)
            started = time.monotonic()
            await db.commit()
        while not recorder.messages and time.monotonic() - started < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        latency = time.monotonic() - started
    finally:
        await relay.stop()

    assert len(recorder.messages) == 1
    assert latency < 1.0, latency  # woken by the commit, not by the 30 s poll
    async with db_engine.connect() as connection:
        unsent = select(func.count()).where(TaskOutbox.sent_at.is_(None))
        assert await connection.scalar(unsent) == 0


async def test_two_copies_running_at_once_run_the_task_once(clean_tables, db_engine):
    """Two copies of one task id (published twice around a broker restart) arrive together:
    the second waits for the first's outcome, then does nothing."""
    broker = build_broker(TASKIQ_BROKER="memory")
    effects: list[str] = []

    @broker.task(task_name="tests.outbox.slow_effect")
    async def slow_effect(name: str) -> None:
        await asyncio.sleep(0.3)
        effects.append(name)

    async with get_sessionmaker()() as db:
        task_id = await outbox.add(db, slow_effect, "once")
        await db.commit()
    [row] = await outbox_rows(db_engine)
    for _ in range(2):
        kicker = slow_effect.kicker().with_labels(**row["labels"]).with_task_id(task_id)
        await kicker.kiq("once")
    await drain(broker)

    assert effects == ["once"]
    [row] = await outbox_rows(db_engine)
    assert row["done_at"] is not None
