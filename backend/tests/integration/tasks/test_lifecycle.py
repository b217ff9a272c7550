"""What the app's lifespan does with the broker: connect Redis (declaring the consumer group
the workers read from), and, for the in-memory broker, let tasks in flight finish."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from redis.asyncio import Redis

from src.infrastructure.taskiq import build_broker
from src.infrastructure.taskiq.brokers import drain, start_broker, stop_broker


@pytest.mark.integration
async def test_a_redis_broker_declares_its_consumer_group_on_start(redis_url):
    queue = f"tests-{uuid.uuid4().hex[:12]}"
    broker = build_broker(TASKIQ_BROKER="redis", REDIS_URL=redis_url, TASKIQ_QUEUE_NAME=queue)
    await start_broker(broker)
    try:
        async with Redis.from_url(redis_url) as redis:
            groups = await redis.xinfo_groups(queue)
            assert [group["name"].decode() for group in groups] == [queue]
            await drain(broker)  # nothing runs here: returns at once
    finally:
        await stop_broker(broker)
        async with Redis.from_url(redis_url) as redis:
            await redis.delete(queue)


@pytest.mark.integration
async def test_stopping_the_in_memory_broker_lets_running_tasks_finish():
    broker = build_broker(TASKIQ_BROKER="memory")
    finished: list[str] = []

    @broker.task(task_name="tests.lifecycle.slow")
    async def slow() -> None:
        await asyncio.sleep(0.2)
        finished.append("slow")

    await start_broker(broker)
    await slow.kiq()
    await stop_broker(broker)
    assert finished == ["slow"]


@pytest.mark.integration
async def test_stopping_gives_up_on_a_task_that_outlasts_the_wait(caplog):
    broker = build_broker(TASKIQ_BROKER="memory")
    release = asyncio.Event()

    @broker.task(task_name="tests.lifecycle.stuck")
    async def stuck() -> None:
        await release.wait()

    await stuck.kiq()
    with caplog.at_level(logging.WARNING):
        await stop_broker(broker, wait_seconds=0.1)
    assert "still running" in caplog.text
    release.set()
    await drain(broker)
