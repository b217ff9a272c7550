"""`app worker` and `app scheduler` as real subprocesses on the Redis broker.

The worker runs against the test database (Postgres, or the SQLite file of the embedded
profile: both processes open the same file) and sends mail to an SMTP server started here.
The API side is the app in this process (`committed_client`): a sign-up over HTTP writes its
task to the outbox, the worker's own outbox relay publishes it to the worker's Redis queue, and
its effect is read back from the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from taskiq import AsyncBroker

from src.infrastructure.taskiq import build_broker
from tests.helpers.factories import build_user_create_payload
from tests.integration.tasks import worker_tasks
from tests.integration.tasks.conftest import welcome_sent_at
from tests.integration.tasks.helpers import AppProcess, SmtpSink, eventually, subprocess_env

WORKER_TASKS = "tests.integration.tasks.worker_tasks"
LISTENING = "Listening started."


@pytest.fixture(scope="module")
def queue_name() -> str:
    return f"tests-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture(scope="module")
def worker_env(redis_url: str, queue_name: str, smtp_server: SmtpSink) -> dict[str, str]:
    # DATABASE_URL and REDIS_URL are the test database and this xdist worker's Redis DB.
    return subprocess_env(
        TASKIQ_BROKER="redis",
        REDIS_URL=redis_url,
        TASKIQ_QUEUE_NAME=queue_name,
        TASKIQ_RETRY_DELAY_SECONDS="0.1",
        EMAIL_BACKEND="smtp",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_server.port),
        SMTP_STARTTLS="false",
        LOG_LEVEL="INFO",
    )


@pytest.fixture(scope="module")
def worker(
    db_engine, worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcess]:
    """`app worker --workers 1`, with the test tasks loaded; always terminated."""
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    process = AppProcess(["worker", "--workers", "1", WORKER_TASKS], worker_env, log)
    try:
        yield process.start(ready_when=LISTENING)
    finally:
        process.stop()


@pytest_asyncio.fixture
async def redis_tasks(redis_url: str, queue_name: str) -> AsyncIterator[AsyncBroker]:
    """The test sends tasks to the worker's Redis queue."""
    broker = build_broker(TASKIQ_BROKER="redis", REDIS_URL=redis_url, TASKIQ_QUEUE_NAME=queue_name)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


@pytest.mark.integration
@pytest.mark.slow
async def test_sign_up_over_http_is_handled_by_the_worker_process(
    worker, committed_client, db_engine, smtp_server
):
    payload = build_user_create_payload()
    response = await committed_client.post(
        "/api/v1/users/", json=payload, headers={"X-Request-ID": "signup-worker-1"}
    )
    assert response.status_code == 201
    user_id = response.json()["id"]

    # The worker (another process) sent the email and recorded it in the database.
    assert await eventually(
        lambda: welcome_sent_at(db_engine, user_id), within=30, explain=worker.output
    )
    [mail] = smtp_server.sent_to(payload["email"])
    assert mail.message["Subject"].startswith("Welcome to")
    # Its log lines for that task carry the request id of the HTTP request.
    [line] = [line for line in worker.output().splitlines() if "welcome email sent" in line]
    assert "signup-worker-1" in line


@pytest.mark.integration
@pytest.mark.slow
async def test_a_task_that_fails_twice_then_succeeds_is_retried_by_the_worker(
    worker, redis_tasks, redis_url
):
    key = f"tests:attempts:{uuid.uuid4().hex}"
    sent = await worker_tasks.fail_twice.kicker().with_broker(redis_tasks).kiq(key)

    result = await sent.wait_result(timeout=30)  # through the Redis result backend
    assert not result.is_err, result.error
    assert result.return_value == 3
    async with Redis.from_url(redis_url) as redis:
        assert int(await redis.get(key)) == 3
    assert "tests.fail_twice failed. Retrying 1/" in worker.output()
    assert "tests.fail_twice failed. Retrying 2/" in worker.output()


@pytest.mark.integration
@pytest.mark.slow
async def test_the_scheduler_sends_scheduled_tasks_to_the_worker(
    worker, worker_env, redis_url, tmp_path
):
    async with Redis.from_url(redis_url) as redis:
        await redis.delete(worker_tasks.TICKS_KEY)
        scheduler = AppProcess(["scheduler", WORKER_TASKS], worker_env, tmp_path / "sched.log")
        try:
            scheduler.start(ready_when="Startup completed.")

            async def ticks() -> int:
                return int(await redis.get(worker_tasks.TICKS_KEY) or 0) >= 2

            # `interval: 1`: sent more than once
            assert await eventually(ticks, within=30, explain=scheduler.output)
        finally:
            scheduler.stop()
