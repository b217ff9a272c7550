"""Tasks on the in-memory broker (the tests' and the embedded profile's default): `.kiq()` runs
the task in this process, nothing is patched. Sign-up writes the welcome email to the outbox;
`drain()` publishes it (what the app's relay does) and waits for it."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from src.infrastructure.database.session import get_sessionmaker
from src.infrastructure.email import SmtpEmailSender, get_email_sender
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.brokers import drain
from src.infrastructure.taskiq.dependencies import TaskDB
from src.modules.user.models import User
from src.modules.user.tasks import send_welcome_email
from tests.helpers.factories import build_user_create_payload
from tests.helpers.outbox import outbox_rows
from tests.integration.tasks.conftest import welcome_sent_at
from tests.integration.tasks.helpers import SmtpSink


@pytest.mark.integration
async def test_kiq_runs_the_task_here_and_a_second_run_sends_nothing(committed_user, db_engine):
    first = await send_welcome_email.kiq(committed_user["id"])
    assert (await first.wait_result(timeout=10)).return_value is True
    assert await welcome_sent_at(db_engine, committed_user["id"]) is not None

    again = await send_welcome_email.kiq(committed_user["id"])
    assert (await again.wait_result(timeout=10)).return_value is False  # sent once only


@pytest.mark.integration
async def test_sign_up_sends_the_welcome_email_in_the_background(
    committed_client, db_engine, caplog
):
    payload = build_user_create_payload()
    with caplog.at_level(logging.INFO):
        response = await committed_client.post("/api/v1/users/", json=payload)
        assert response.status_code == 201
        await drain(default_broker)  # what a test does instead of waiting for a worker

    assert await welcome_sent_at(db_engine, response.json()["id"]) is not None
    emails = [
        r.getMessage() for r in caplog.records if r.name == "src.infrastructure.email.console"
    ]
    assert any(f"To: {payload['email']}" in email for email in emails)


@pytest.mark.integration
async def test_a_sign_up_that_is_not_committed_sends_nothing(client, db_session, caplog):
    """`client` keeps everything in the test's transaction, which the relay (like a worker)
    never sees: the task row exists only in that transaction, nothing is sent or run."""
    with caplog.at_level(logging.INFO, logger="src.modules.user.tasks"):
        response = await client.post("/api/v1/users/", json=build_user_create_payload())
        assert response.status_code == 201
        await drain(default_broker)

    user_id = response.json()["id"]
    assert "welcome email" not in caplog.text
    [row] = await outbox_rows(db_session, send_welcome_email)
    assert row["args"] == [user_id]
    assert row["sent_at"] is None
    sent_at = await db_session.scalar(select(User.welcome_email_sent_at).where(User.id == user_id))
    assert sent_at is None


@pytest.mark.integration
async def test_sign_up_writes_its_task_in_its_own_transaction(client, db_session):
    response = await client.post(
        "/api/v1/users/", json=build_user_create_payload(), headers={"X-Request-ID": "req-42"}
    )
    assert response.status_code == 201

    user_id = response.json()["id"]
    [row] = await outbox_rows(db_session, send_welcome_email)
    assert row["args"] == [user_id]
    assert row["kwargs"] == {}
    assert row["labels"]["request_id"] == "req-42"
    assert row["next_attempt_at"] is not None
    assert row["attempts"] == 0


@pytest.mark.integration
async def test_a_failing_mail_server_is_retried_with_backoff_and_never_fails_the_sign_up(
    app, committed_client, db_engine, fast_broker
):
    payload = build_user_create_payload()
    with SmtpSink(fail_first=2) as server:  # "451 try again later", twice
        fast_broker.dependency_overrides[get_email_sender] = lambda: SmtpEmailSender(
            host="127.0.0.1", port=server.port, default_sender="app@example.com", starttls=False
        )
        response = await committed_client.post("/api/v1/users/", json=payload)
        assert response.status_code == 201
        await drain(fast_broker)  # the outbox rows go to this broker

    assert server.attempts == 3
    [mail] = server.sent_to(payload["email"])
    assert mail.message["Subject"].startswith("Welcome to")
    assert await welcome_sent_at(db_engine, response.json()["id"]) is not None


@pytest.mark.integration
async def test_a_task_session_commits_what_the_task_commits_and_nothing_else(
    committed_user, fast_broker, db_engine
):
    @fast_broker.task(task_name="tests.rename", retry_on_error=False)
    async def rename(user_id: int, name: str, fail: bool, db: TaskDB) -> None:
        user = await db.get(User, user_id)
        assert user is not None
        user.name = name
        await db.flush()
        if fail:
            raise RuntimeError("after the write, before the commit")
        await db.commit()

    failed = await (await rename.kiq(committed_user["id"], "Never", True)).wait_result(timeout=10)
    done = await (await rename.kiq(committed_user["id"], "Renamed", False)).wait_result(timeout=10)

    assert failed.is_err
    assert not done.is_err
    async with get_sessionmaker()() as db:
        assert (await db.get(User, committed_user["id"])).name == "Renamed"
