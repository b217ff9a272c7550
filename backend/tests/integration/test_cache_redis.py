"""`@cache` on the real local Redis: storage, TTL, invalidation across processes, stampedes
within and across processes, and failing open when Redis is closed or never answers."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from src.infrastructure.cache import cache, invalidate, reset_cache_backend
from src.infrastructure.cache.manager import CacheManager
from src.infrastructure.config import settings

pytestmark = pytest.mark.integration
CACHE_LOGGER = "src.infrastructure.cache.manager"


def point_cache_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    parts = urlsplit(url)
    monkeypatch.setattr(settings, "CACHE_ENABLED", True)
    monkeypatch.setattr(settings, "CACHE_BACKEND", "redis")
    monkeypatch.setattr(settings, "CACHE_REDIS_HOST", parts.hostname or "127.0.0.1")
    monkeypatch.setattr(settings, "CACHE_REDIS_PORT", parts.port or 6379)
    monkeypatch.setattr(settings, "CACHE_REDIS_DB", int(parts.path.strip("/") or 0))
    monkeypatch.setattr(settings, "CACHE_REDIS_PASSWORD", parts.password)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture
async def redis(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Redis]:
    """The cache on this worker's Redis database, and a client to look inside it."""
    point_cache_at(monkeypatch, clean_redis)
    client = Redis.from_url(clean_redis)
    yield client
    await client.aclose()


class Source:
    """A slow "database" whose reads are counted."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = "v1"

    async def read(self, delay: float = 0.05) -> dict[str, Any]:
        self.calls += 1
        value = self.value
        await asyncio.sleep(delay)
        return {"value": value}


async def test_entries_live_in_redis_with_their_ttl(redis):
    source = Source()

    @cache("item:{item_id}", ttl=30)
    async def read(item_id: int) -> dict[str, Any]:
        return await source.read()

    assert await read(item_id=1) == {"value": "v1"}
    source.value = "v2"
    assert await read(item_id=1) == {"value": "v1"}  # a hit, the source was not read

    assert source.calls == 1
    keys = [key.decode() async for key in redis.scan_iter(match="cache:d:*")]
    assert keys == ["cache:d:item:1"]
    assert 0 < await redis.ttl("cache:d:item:1") <= 30


async def test_entries_expire(redis):
    source = Source()

    @cache("item", ttl=0.2)
    async def read() -> dict[str, Any]:
        return await source.read(0)

    await read()
    await asyncio.sleep(0.3)
    await read()

    assert source.calls == 2


async def test_an_invalidation_reaches_every_process(redis):
    # Two managers = two processes: each its own client and in-flight table, one Redis.
    source = Source()
    first, second = CacheManager(), CacheManager()
    try:
        for manager in (first, second):
            assert await manager.fetch("item", ("items",), 30, source.read) == {"value": "v1"}
        assert source.calls == 1  # the second process found the first one's entry

        source.value = "v2"
        await first.invalidate("items")

        assert await second.fetch("item", ("items",), 30, source.read) == {"value": "v2"}
        assert await first.fetch("item", ("items",), 30, source.read) == {"value": "v2"}
        assert source.calls == 2
    finally:
        await first.reset()
        await second.reset()


async def test_50_concurrent_misses_on_one_key_compute_once(redis):
    source = Source()

    @cache("hot")
    async def read() -> dict[str, Any]:
        return await source.read(0.1)

    results = await asyncio.gather(*(read() for _ in range(50)))

    assert source.calls == 1
    assert all(result == {"value": "v1"} for result in results)


async def test_concurrent_misses_in_several_processes_compute_once(redis):
    # The Redis lock: the process that does not hold it waits for the other's result.
    source = Source()
    managers = [CacheManager() for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(
                manager.fetch("hot", (), 30, lambda: source.read(0.2))
                for manager in managers
                for _ in range(10)
            )
        )
        assert source.calls == 1
        assert all(result == {"value": "v1"} for result in results)
        assert await redis.exists("cache:l:hot") == 0  # the lock was released
    finally:
        for manager in managers:
            await manager.reset()


async def test_a_late_store_of_an_old_value_is_never_served(redis):
    source = Source()
    gate = asyncio.Event()
    loading = asyncio.Event()

    async def slow_old_read() -> dict[str, Any]:
        value = source.value
        loading.set()
        await gate.wait()
        return {"value": value}

    @cache("item")
    async def read() -> dict[str, Any]:
        return await slow_old_read() if not gate.is_set() else await source.read(0)

    stale_reader = asyncio.create_task(read())
    await loading.wait()  # the old value is read (an event, not a sleep: CI machines are busy)
    source.value = "v2"
    await invalidate("item")  # the write committed while the old value was being loaded
    gate.set()
    assert await stale_reader == {"value": "v1"}
    assert await redis.exists("cache:d:item") == 1  # it was stored...

    assert await read() == {"value": "v2"}  # ...but under stale version stamps


async def test_a_damaged_entry_is_a_miss_and_is_replaced(redis):
    source = Source()

    @cache("item")
    async def read() -> dict[str, Any]:
        return await source.read(0)

    for garbage in (b"bytes:not json", b"bytes:[1, 2]", b"\x80\x04pickle?"):
        await redis.set("cache:d:item", garbage)
        assert await read() == {"value": "v1"}
    assert await read() == {"value": "v1"}

    assert source.calls == 3  # each damaged entry was recomputed, the last one replaced


async def test_disabled_cache_neither_reads_nor_writes_redis(redis, monkeypatch):
    monkeypatch.setattr(settings, "CACHE_ENABLED", False)
    source = Source()

    @cache("item")
    async def read() -> dict[str, Any]:
        return await source.read(0)

    await read()
    await read()
    await invalidate("item")

    assert source.calls == 2
    assert await redis.dbsize() == 0


# --- failing open ------------------------------------------------------------------------------


async def test_closed_port_serves_every_call_and_warns_once(monkeypatch, caplog):
    point_cache_at(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")
    source = Source()

    @cache("item", tags=["items"])
    async def read() -> dict[str, Any]:
        return await source.read(0)

    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        results = [await read() for _ in range(5)]
        await invalidate("items")

    assert results == [{"value": "v1"}] * 5
    assert source.calls == 5
    failures = [r for r in caplog.records if r.name == CACHE_LOGGER and "failed" in r.message]
    assert len(failures) == 1  # then it is left alone for a while, not retried per call
    assert "ConnectionError" in failures[0].getMessage()
    assert any("deferred" in record.message for record in caplog.records)


async def test_a_redis_that_never_answers_is_not_retried_on_every_call(monkeypatch):
    connections = 0

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # accept, never answer
        writer.close()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    point_cache_at(monkeypatch, f"redis://127.0.0.1:{port}/0")
    source = Source()

    @cache("item")
    async def read() -> dict[str, Any]:
        return await source.read(0)

    try:
        results = [await read() for _ in range(10)]
    finally:
        await reset_cache_backend()
        server.close()

    assert results == [{"value": "v1"}] * 10  # every call answered, from the source
    # The first call's attempts time out, then the backend is left alone for a while:
    # far fewer connection attempts than calls (one timeout per call would be ten).
    assert 1 <= connections < len(results) // 2


async def test_concurrent_misses_compute_once_even_when_redis_is_down(monkeypatch):
    point_cache_at(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")
    source = Source()

    @cache("hot")
    async def read() -> dict[str, Any]:
        return await source.read(0.1)

    await asyncio.gather(*(read() for _ in range(50)))

    assert source.calls == 1


async def test_invalidations_missed_during_an_outage_are_written_when_redis_is_back(
    redis, clean_redis, monkeypatch
):
    source = Source()

    @cache("item")
    async def read() -> dict[str, Any]:
        return await source.read(0)

    assert await read() == {"value": "v1"}
    source.value = "v2"

    point_cache_at(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")  # Redis goes away
    await invalidate("item")  # a write commits during the outage
    point_cache_at(monkeypatch, clean_redis)  # Redis is back, with the old entry

    assert await read() == {"value": "v2"}
