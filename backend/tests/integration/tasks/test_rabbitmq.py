"""The RabbitMQ broker round-trips a task through a real RabbitMQ, retries included (they wait
in RabbitMQ's delay queue). The consuming side is taskiq's own `Receiver`, as in a worker.

RabbitMQ: `TEST_RABBITMQ_URL`, or the local default amqp://guest:guest@127.0.0.1:5672/. When
the variable is unset and nothing answers there, these tests are skipped with that reason
(printed by `-rs`); when it is set, an unreachable server fails them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlparse

import aio_pika
import pytest
import pytest_asyncio
from taskiq import AsyncBroker, Context, TaskiqDepends
from taskiq.receiver import Receiver

from src.infrastructure.taskiq import build_broker

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
RETRY_DELAY = 0.2


def _rabbitmq_url() -> str:
    explicit = os.environ.get("TEST_RABBITMQ_URL")
    url = explicit or DEFAULT_URL
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 5672), timeout=2):
            return url
    except OSError as error:
        reason = f"RabbitMQ at {parsed.hostname}:{parsed.port or 5672} did not answer ({error})"
        if explicit:
            pytest.fail(f"{reason}; TEST_RABBITMQ_URL is set, so it is required", pytrace=False)
        pytest.skip(f"{reason}; set TEST_RABBITMQ_URL to require it")


@pytest_asyncio.fixture
async def rabbitmq() -> AsyncIterator[tuple[AsyncBroker, dict[str, list[Any]]]]:
    """A RabbitMQ broker from the app's recipe on queues of its own, consumed in this process
    by a running `Receiver`; everything it declared is deleted afterwards."""
    url = _rabbitmq_url()
    name = f"tests-{uuid.uuid4().hex[:12]}"
    broker = build_broker(
        TASKIQ_BROKER="rabbitmq",
        RABBITMQ_URL=url,
        TASKIQ_QUEUE_NAME=name,
        TASKIQ_RETRY_DELAY_SECONDS=RETRY_DELAY,
        REDIS_URL=None,
    )
    calls: dict[str, list[Any]] = {}

    @broker.task(task_name="tests.rabbitmq.echo")
    async def echo(value: str) -> None:
        calls.setdefault("echo", []).append(value)

    @broker.task(task_name="tests.rabbitmq.fail_once")
    async def fail_once(value: str, context: Annotated[Context, TaskiqDepends()]) -> None:
        calls.setdefault("fail_once", []).append(time.monotonic())
        calls.setdefault("delay_labels", []).append(context.message.labels.get("delay"))
        if len(calls["fail_once"]) == 1:
            raise RuntimeError("first attempt fails on purpose")
        calls.setdefault("fail_once_done", []).append(value)

    broker.is_worker_process = True
    await broker.startup()
    finished = asyncio.Event()
    receiver = Receiver(broker, run_startup=False, max_async_tasks=10)
    listening = asyncio.create_task(receiver.listen(finished))
    try:
        yield broker, calls
    finally:
        finished.set()
        await asyncio.wait_for(listening, timeout=10)
        await broker.shutdown()
        connection = await aio_pika.connect(url)
        async with connection, connection.channel() as channel:
            for queue in (name, f"{name}.delay", f"{name}.dead_letter"):
                await channel.queue_delete(queue)
            await channel.exchange_delete(name)


async def _until(condition, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "RabbitMQ did not deliver in time"
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_a_task_goes_through_rabbitmq_and_runs(rabbitmq):
    broker, calls = rabbitmq
    await broker.find_task("tests.rabbitmq.echo").kiq("hello")
    await _until(lambda: calls.get("echo"))
    assert calls["echo"] == ["hello"]


@pytest.mark.integration
async def test_a_retry_waits_in_the_delay_queue_then_runs_again(rabbitmq):
    broker, calls = rabbitmq
    await broker.find_task("tests.rabbitmq.fail_once").kiq("payload")
    await _until(lambda: calls.get("fail_once_done"))

    first, second = calls["fail_once"]
    assert calls["fail_once_done"] == ["payload"]
    # The retry was sent with a delay for RabbitMQ to hold (its delay queue, per-message TTL),
    # not slept on by the worker, and it did wait.
    assert calls["delay_labels"][0] is None
    assert float(calls["delay_labels"][1]) >= RETRY_DELAY
    assert second - first >= RETRY_DELAY
