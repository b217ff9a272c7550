"""Where cached values live: cashews' in-memory LRU or Redis backend, behind a small typed store.

cashews (a maintained async cache library) supplies the storage layer: an LRU dictionary with
per-key expiry for the memory profile, a pooled Redis client with socket timeouts, atomic
lock acquisition and compare-and-delete release (a Lua script), and one async interface for
both, so everything above this module runs the same code on both profiles.

What is configured or written here rather than taken as is, and why:
- Values are bytes we serialise ourselves (JSON, see `manager.py`) and the backends use
  cashews' null pickler. cashews' default serializer *unpickles* what it reads from Redis,
  so anyone able to write to Redis could run code in the app; JSON cannot. (In Redis an
  entry reads `bytes:{"s": [...], "d": ...}`: `bytes:` is cashews' marker for raw bytes.)
- cashews' Memory backend stores the object itself (a shallow copy); storing bytes gives
  every caller a fresh value, exactly as Redis does, so the profiles cannot drift apart.
- Errors are not suppressed (`suppress=False`): cashews' safe mode logs a traceback at error
  level for every failed command. `manager.py` decides instead: one warning, then fail open.
- Short socket timeouts and one reconnect attempt, so a dead Redis costs milliseconds, and
  a Redis restart (stale pooled connections) costs nothing.
- `close()` uses redis-py's `aclose()`: cashews still calls the deprecated `close()`.
- The hot read (one `MGET` per cache lookup: the entry, its lock and its version tokens) runs
  on `RedisReads`, a few redis-py connections of its own, rather than through the client:
  the client's blocking pool (a lock, a condition, a timeout and a liveness read per
  command), its retry wrapper and cashews' per-value decoding cost twice the command itself
  (about 120 us against 55 us of CPU per lookup, measured in one run). redis-py still
  connects, authenticates, times out and parses; what is ours is the bounded idle list,
  opening connections one at a time, and the one retry of a connection that went stale,
  the same policy the client had.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cashews.backends.interface import Backend
from cashews.backends.memory import Memory
from cashews.backends.redis import Redis
from cashews.picklers import PicklerType
from cashews.serialize import get_serializer
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from src.infrastructure.config import Settings, mask_url

MEMORY_MAX_ENTRIES = 10_000
"""LRU bound of the in-process store (entries, not bytes)."""
REDIS_SOCKET_TIMEOUT_SECONDS = 0.25
REDIS_POOL_WAIT_SECONDS = 1.0
REDIS_MAX_CONNECTIONS = 50
"""Of the client (writes, locks); the hot reads have as many again of their own."""

Fingerprint = tuple[str, tuple[str, str | None] | None]


def fingerprint(settings: Settings) -> Fingerprint:
    """The settings a store is built from; when they change, the store is rebuilt."""
    return (settings.CACHE_BACKEND, settings.cache_redis)


class CacheStore:
    """The handful of operations the cache needs, on either backend.

    Values are bytes (cache entries) or ints (version and lock tokens); a missing key reads
    as None. Every method may raise whatever the backend raises; callers fail open.
    """

    def __init__(self, backend: Backend, *, shared: bool, description: str) -> None:
        self._backend = backend
        self.shared = shared
        """True when other processes see the same data (Redis): cross-process locks matter."""
        self.description = description

        self._reads: RedisReads | None = None

    async def open(self) -> None:
        await self._backend.init()  # type: ignore[no-untyped-call]  # cashews leaves it untyped
        pool = getattr(getattr(self._backend, "_client", None), "connection_pool", None)
        if self.shared and pool is not None:  # a plain Redis client (not a cluster)
            self._reads = RedisReads(
                pool.make_connection, REDIS_MAX_CONNECTIONS, REDIS_POOL_WAIT_SECONDS
            )

    async def get_many(self, keys: Sequence[str]) -> tuple[Any, ...]:
        if self._reads is not None:
            return tuple(map(_decode, await self._reads.execute("MGET", *keys)))
        return tuple(await self._backend.get_many(*keys))

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._backend.set(key, value, expire=ttl)

    async def set_many(self, values: Mapping[str, int], ttl: float) -> None:
        await self._backend.set_many(values, expire=ttl)

    async def try_lock(self, key: str, token: int, ttl: float) -> bool:
        return await self._backend.set_lock(key, token, expire=ttl)

    async def unlock(self, key: str, token: int) -> None:
        await self._backend.unlock(key, token)

    async def clear(self, prefix: str) -> None:
        """Delete every key under `prefix` (the memory store holds nothing else)."""
        if not self.shared:
            await self._backend.clear()
            return
        await self._backend.delete_match(_glob_escape(prefix) + "*")

    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        client = getattr(self._backend, "_client", None)
        if client is not None:  # Redis: close the pool, without cashews' deprecated close()
            await client.aclose(close_connection_pool=True)
        else:
            await self._backend.close()  # type: ignore[no-untyped-call]


class CacheRedisNotConfiguredError(RuntimeError):
    """CACHE_BACKEND=redis with no Redis named (the validator refuses to start with it)."""


def redis_address(settings: Settings) -> tuple[str, str | None]:
    """(URL, password) of the cache's Redis: CACHE_REDIS_URL, else CACHE_REDIS_HOST/PORT/DB/
    PASSWORD when any is set, else REDIS_URL; never a silent localhost."""
    address = settings.cache_redis
    if address is None:
        raise CacheRedisNotConfiguredError(
            "CACHE_BACKEND=redis but none of CACHE_REDIS_URL, CACHE_REDIS_HOST or REDIS_URL is set"
        )
    return address


def build_store(settings: Settings) -> CacheStore:
    """A store for `CACHE_BACKEND`, not yet opened (opening touches no network)."""
    serializer = get_serializer(pickle_type=PicklerType.NULL, check_repr=False)
    if settings.CACHE_BACKEND == "memory":
        memory = Memory(size=MEMORY_MAX_ENTRIES, check_interval=0, serializer=serializer)
        return CacheStore(memory, shared=False, description="memory")
    address, password = redis_address(settings)
    redis = Redis(
        address,
        suppress=False,
        serializer=serializer,
        password=password,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
        max_connections=REDIS_MAX_CONNECTIONS,
        wait_for_connection_timeout=REDIS_POOL_WAIT_SECONDS,
        client_name="cache",
    )
    return CacheStore(redis, shared=True, description=f"redis at {mask_url(address)}")


def _decode(value: Any) -> Any:
    """A raw value as cashews' serializer (null pickler, no signing) reads what it wrote: our
    entries as their bytes, tokens as ints, anything else as missing."""
    if not isinstance(value, bytes):
        return None
    if value.isdigit():
        return int(value)
    kind, separator, rest = value.partition(b":")
    return rest if separator and kind == b"bytes" else None


class RedisReads:
    """A bounded set of redis-py connections for one kind of idempotent read.

    `execute` takes an idle connection (the most recently used), or opens one while fewer
    than `size` exist and no other is being opened, or waits for one to come back or for its
    turn to open one, up to `wait` seconds in all (then raises redis-py's ConnectionError,
    like its blocking pool). Opening one at a time: a burst of lookups on a cold process
    opens connections one after the other, each reused as soon as its read ends, instead of
    dozens of sockets at once (whose connects then time out on a busy loop). redis-py drops
    the socket of a connection whose command failed or was cancelled and reconnects it on
    its next use, so a connection always returns to the idle list. A read that fails with a
    ConnectionError on a connection that was already open (Redis restarted since) runs once
    more on a fresh socket; a read on a connection opened for it that fails, or a timeout,
    raises at once, and so do the calls waiting behind a connect that failed (one attempt per
    burst while Redis is down). Connecting follows the client's settings (one retried connect
    attempt; a PING first on a new connection and on one idle for over
    `health_check_interval`). After `close()` every call, and every call still waiting,
    raises ConnectionError at once.
    """

    def __init__(self, make: Callable[[], AbstractConnection], size: int, wait: float) -> None:
        self._make = make
        self._size = size
        self._wait = wait
        self._idle: list[AbstractConnection] = []
        self._count = 0  # made so far (idle or in use)
        self._connecting = False
        self._closed = False
        self._timeout: float | None = None  # its connections' socket timeout (`_open`)
        # A waiter gets a connection, or None: a connect ended, look again.
        self._waiters: deque[asyncio.Future[AbstractConnection | None]] = deque()

    async def execute(self, *command: Any) -> Any:
        connection, opened = await self._acquire()
        try:
            # One deadline for the whole command, the connection's socket timeout: redis-py
            # would arm one for the write (`asyncio.wait_for`, a task of its own: a twentieth
            # of a cache hit) and one for the read. A command cut short drops its socket,
            # as redis-py's own timeouts do.
            try:
                async with asyncio.timeout(self._timeout):
                    retry = not opened and connection.is_connected
                    try:
                        await connection.send_command(*command)
                        return await connection.read_response()
                    except RedisConnectionError:
                        if not retry:
                            raise
                    await connection.send_command(*command)  # redis-py reconnects it first
                    return await connection.read_response()
            except TimeoutError:  # the deadline's (redis-py's own is no TimeoutError)
                raise RedisTimeoutError("Timeout reading from the cache") from None
        finally:
            if self._closed:
                await connection.disconnect(nowait=True)
            else:
                self._release(connection)

    async def close(self) -> None:
        """Close the idle connections; those in use close as their reads end."""
        self._closed = True
        self._fail_waiters(self._closed_error())
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()

    def _closed_error(self) -> RedisConnectionError:
        return RedisConnectionError("the cache's read connections are closed")

    async def _acquire(self) -> tuple[AbstractConnection, bool]:
        """A connection, and whether it was opened for this call."""
        deadline = None
        while True:
            if self._closed:
                raise self._closed_error()
            if self._idle:
                return self._idle.pop(), False
            if self._count < self._size and not self._connecting:
                return await self._open(), True
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self._wait
            handed = await self._wait_for_turn(deadline)
            if handed is not None:
                return handed, False

    async def _open(self) -> AbstractConnection:
        self._count += 1
        self._connecting = True
        connection = self._make()
        try:
            await connection.connect()  # type: ignore[no-untyped-call]
        except BaseException as error:
            self._count -= 1
            self._connecting = False
            if isinstance(error, Exception):
                # Redis is unreachable right now: every call waiting behind this connect
                # fails with it at once (and fails open) instead of trying one of its own.
                self._fail_waiters(error)
            else:  # cancelled: the next waiter may open one
                self._nudge()
            raise
        self._connecting = False
        self._nudge()
        # From now on `execute` keeps the time (see there).
        self._timeout = connection.socket_timeout
        connection.socket_timeout = None
        return connection

    def _fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _nudge(self) -> None:
        """Let the first waiter look again (it may open the next connection)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _wait_for_turn(self, deadline: float) -> AbstractConnection | None:
        waiter: asyncio.Future[AbstractConnection | None]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over as this call gave up: pass it on
                if handed is None:
                    self._nudge()
                elif self._closed:
                    await handed.disconnect(nowait=True)
                else:
                    self._release(handed)
            waiter.cancel()  # `_release` and `_nudge` skip it
            if isinstance(error, TimeoutError):
                raise RedisConnectionError(
                    f"all {self._size} connections of the cache's reads are busy"
                ) from None
            raise

    def _release(self, connection: AbstractConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
