"""The cache's hot read (`RedisReads`, `CacheStore.get_many` on Redis): the same values as
cashews reads, a bounded number of connections, a restarted Redis costs no failed lookup, and
a timed-out, refused or cancelled read leaves nothing half-read behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.infrastructure.cache.backends import CacheStore, RedisReads, build_store
from src.infrastructure.config import settings
from tests.helpers.servers import private_redis
from tests.integration.test_cache_redis import point_cache_at

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def store(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CacheStore]:
    point_cache_at(monkeypatch, clean_redis)
    opened = build_store(settings)
    await opened.open()
    yield opened
    await opened.close()


def connection_to(port: int, *, timeout: float = 0.25) -> Connection:
    return Connection(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )


class SilentServer:
    """Accepts connections and never answers; counts the ones open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most_open = 0
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await reader.read()  # until the client hangs up
        finally:
            self.open -= 1
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_reads_what_the_store_wrote_as_cashews_does(store, clean_redis):
    await store.set("k:entry", b'{"s": [1], "d": {"name": "x"}}', 60)
    await store.set_many({"k:version": 12345}, 60)
    raw = Redis.from_url(clean_redis)
    await raw.set("k:foreign", b"pickle:not-ours")
    await raw.set("k:plain", b"no-marker-at-all")
    await raw.aclose()
    keys = ["k:entry", "k:version", "k:missing", "k:foreign", "k:plain"]

    ours = await store.get_many(keys)
    cashews = tuple(await store._backend.get_many(*keys))

    assert ours == (b'{"s": [1], "d": {"name": "x"}}', 12345, None, None, None)
    assert ours == cashews
    assert store._reads is not None  # the Redis store reads through its own connections


async def test_a_restarted_redis_costs_no_failed_lookup():
    with private_redis() as server:
        reads = RedisReads(lambda: connection_to(server.port), 4, 1.0)
        client = Redis(port=server.port)
        await client.set("k", "1")
        assert await reads.execute("MGET", "k") == [b"1"]

        server.kill()
        server.start()  # same port, empty: the idle connection is stale
        await client.set("k", "2")

        assert await reads.execute("MGET", "k") == [b"2"]  # one retry on a fresh socket
        await reads.close()
        await client.aclose()


async def test_a_connection_that_fails_at_once_is_not_retried():
    accepted = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()  # a server that is going away: accepts, then closes

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reads = RedisReads(lambda: connection_to(port), 4, 1.0)
    try:
        for _ in range(3):
            with pytest.raises(RedisConnectionError):
                await reads.execute("MGET", "k")
    finally:
        await reads.close()
        server.close()

    assert accepted == 3  # one connection per lookup: no second try on a new socket
    assert reads._count == 0  # a connection that could not be opened is not kept


async def test_connections_are_bounded_and_a_full_set_is_a_quick_error():
    with private_redis() as server:
        reads = RedisReads(lambda: connection_to(server.port, timeout=2.0), 2, 0.3)
        results = await asyncio.gather(
            *(reads.execute("BLPOP", "nothing", "0.6") for _ in range(6)),
            return_exceptions=True,
        )
        await reads.close()

    assert reads._count == 2
    assert results.count(None) == 2  # the two that got a connection blocked, then answered
    busy = [r for r in results if isinstance(r, RedisConnectionError)]
    assert len(busy) == 4  # the others gave up waiting for a connection after 0.3 s
    assert all("busy" in str(error) for error in busy)


async def test_a_cancelled_read_leaves_a_connection_that_works():
    with private_redis() as server:
        client = Redis(port=server.port)
        await client.set("k", "v")
        reads = RedisReads(lambda: connection_to(server.port), 1, 1.0)
        # A read cancelled before its reply arrives: redis-py drops the socket, so the
        # reply can never be read by the next call.
        slow = asyncio.ensure_future(reads.execute("BLPOP", "nothing", "0.2"))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow

        assert await reads.execute("MGET", "k") == [b"v"]  # not BLPOP's late nil
        await reads.close()
        await client.aclose()


async def test_a_reply_slower_than_the_socket_timeout_is_a_timeout_and_the_connection_recovers():
    with private_redis() as server:
        client = Redis(port=server.port)
        await client.set("k", "v")
        reads = RedisReads(lambda: connection_to(server.port, timeout=0.25), 1, 1.0)
        assert await reads.execute("MGET", "k") == [b"v"]  # the connection is open
        loop = asyncio.get_running_loop()
        started = loop.time()

        with pytest.raises(RedisTimeoutError):
            await reads.execute("BLPOP", "nothing", "3")
        waited = loop.time() - started

        assert 0.2 < waited < 1.5  # the connection's 0.25 s, not BLPOP's 3 s
        assert await reads.execute("MGET", "k") == [b"v"]  # not BLPOP's late nil
        await reads.close()
        await client.aclose()


async def test_a_waiter_gets_the_connection_handed_back():
    with private_redis() as server:
        client = Redis(port=server.port)
        await client.set("k", "v")
        await client.aclose()
        reads = RedisReads(lambda: connection_to(server.port), 1, 2.0)

        results = await asyncio.gather(*(reads.execute("MGET", "k") for _ in range(20)))

        assert results == [[b"v"]] * 20
        assert reads._count == 1
        await reads.close()


async def test_closing_closes_connections_in_use_when_their_reads_end():
    with private_redis() as server:
        reads = RedisReads(lambda: connection_to(server.port, timeout=2.0), 2, 1.0)
        made: list[Connection] = []
        original = reads._make

        def tracked() -> Connection:
            connection = original()
            made.append(connection)
            return connection

        reads._make = tracked
        pings = await asyncio.gather(reads.execute("PING"), reads.execute("PING"))
        assert pings == [b"PONG", b"PONG"]  # two connections, both idle now
        slow = asyncio.ensure_future(reads.execute("BLPOP", "nothing", "0.3"))
        await asyncio.sleep(0.05)
        await reads.close()
        assert await slow is None  # the read in flight still finishes

        assert len(made) == 2
        assert not any(connection.is_connected for connection in made)


async def test_closing_wakes_the_waiters_and_refuses_new_reads():
    silent = SilentServer()
    port = await silent.start()
    reads = RedisReads(lambda: connection_to(port, timeout=0.3), 1, 5.0)
    busy = asyncio.ensure_future(reads.execute("MGET", "k"))  # opening the only connection
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(reads.execute("MGET", "k"))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    closed_at = loop.time()

    await reads.close()
    with pytest.raises(RedisConnectionError, match="closed"):
        await waiting
    woken_after = loop.time() - closed_at
    with pytest.raises(RedisConnectionError, match="closed"):
        await reads.execute("MGET", "k")  # at once, no new connection
    with pytest.raises(RedisTimeoutError):
        await busy  # the read in flight ends as it would have
    silent.close()

    assert woken_after < 1.0  # not the 5 s wait for a connection
    assert silent.accepted == 1  # the closed set opened nothing more
    assert reads._count == 0  # the one being opened timed out: nothing kept


async def test_a_burst_on_a_cold_process_opens_one_connection_at_a_time():
    with private_redis() as server:
        client = Redis(port=server.port)
        await client.set("k", "v")
        await client.aclose()
        connecting = most_connecting = 0

        class Counted(Connection):
            async def connect(self) -> None:
                nonlocal connecting, most_connecting
                connecting += 1
                most_connecting = max(most_connecting, connecting)
                try:
                    await super().connect()
                finally:
                    connecting -= 1

        reads = RedisReads(
            lambda: Counted(host="127.0.0.1", port=server.port, socket_timeout=1.0), 50, 5.0
        )
        results = await asyncio.gather(*(reads.execute("MGET", "k") for _ in range(50)))
        await reads.close()

    assert results == [[b"v"]] * 50
    assert most_connecting == 1  # never a storm of simultaneous connects
    assert 1 <= reads._count <= 50


async def test_calls_waiting_behind_a_failed_connect_fail_with_it_at_once():
    attempts = 0

    class Refused(Connection):
        async def connect(self) -> None:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0.05)  # slow enough for the others to queue behind it
            raise RedisConnectionError("refused")

    reads = RedisReads(lambda: Refused(host="127.0.0.1", port=1), 50, 5.0)
    results = await asyncio.gather(
        *(reads.execute("MGET", "k") for _ in range(20)), return_exceptions=True
    )

    assert all(isinstance(result, RedisConnectionError) for result in results)
    assert attempts == 1  # one connect for the whole burst, not one per call
    assert reads._count == 0
