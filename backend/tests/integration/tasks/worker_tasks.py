"""Tasks only the tests send, loaded by the `app worker` / `app scheduler` the tests start
(`app worker tests.integration.tasks.worker_tasks`). Their state lives in Redis (REDIS_URL), so
the test process can watch what the worker did."""

from __future__ import annotations

from redis.asyncio import Redis

from src.infrastructure.config import settings
from src.infrastructure.taskiq import default_broker

TICKS_KEY = "tests:scheduler:ticks"


async def _incr(key: str) -> int:
    assert settings.REDIS_URL
    async with Redis.from_url(settings.REDIS_URL) as redis:
        return int(await redis.incr(key))


@default_broker.task(task_name="tests.fail_twice")
async def fail_twice(key: str) -> int:
    """Fails on its first two attempts, succeeds on the third; returns the attempt number."""
    attempt = await _incr(key)
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


@default_broker.task(task_name="tests.tick", schedule=[{"interval": 1}])
async def tick() -> int:
    """Sent every second by `app scheduler`."""
    return await _incr(TICKS_KEY)
