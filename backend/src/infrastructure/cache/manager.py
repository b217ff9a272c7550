"""The cache runtime: lookups, stampede protection, versioned invalidation, failing open.

Hand-written on top of cashews' storage (see `backends.py`) because these are the parts whose
semantics are ours, and cashews' own decorators get them wrong for request handlers:

Versioned invalidation (generational keys)
    Every name an entry depends on (its key, and each tag) has a version token in the store.
    An entry is stored together with the tokens read *before* its value was computed, and is a
    hit only while they are still current. `invalidate(name)` writes a new token, so one write
    drops a key, or every page of a list tagged `"tiers"`, in a single round trip. It also
    closes the classic race of delete-based invalidation (and of cashews' tag sets): a reader
    that loaded the old row before a write committed, and stores it after the invalidation,
    stores it under the old tokens, so nobody ever reads it.

Stampede protection
    Concurrent misses on one key in one process share one computation (a future per key and
    version). With Redis, the computing process also holds a short lock, and other processes
    wait for its result (polling briefly) instead of computing it again.

Fail open
    Any backend error (refused, timeout, a full pool) logs one warning and the call computes
    its value as if there were no cache. The backend is then left alone for a few seconds, so
    a dead Redis costs one short timeout per interval, not one per request. Invalidations that
    could not be written are kept and written as soon as the backend answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic_core import to_json

from src.infrastructure.cache.backends import CacheStore, Fingerprint, build_store, fingerprint
from src.infrastructure.config import settings

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS: Final = 5.0
"""How long a failed backend is bypassed before it is tried again."""
LOCK_TTL_SECONDS: Final = 5.0
"""Longest a process waits for another one to compute a value before computing it itself."""
LOCK_POLL_SECONDS: Final = 0.02
MIN_VERSION_TTL_SECONDS: Final = 24 * 60 * 60


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What one read of the store found."""

    payload: bytes | None  # the stored entry, when it is a hit
    data: Any  # the cached value, when it is a hit
    stamps: tuple[int | None, ...]  # the current version token of each name
    locked: bool  # another process is computing this key


class _Unavailable(Exception):
    """The backend failed; the caller carries on without it."""


ComputeFn = Callable[[], Awaitable[Any]]


class CacheManager:
    """One per process (`get_cache_manager()`); stores are built lazily from the settings.

    The memory store is shared by every event loop of the process (it is a plain dict); a
    Redis client belongs to the loop that opened it, so there is one per loop (the CLI runs
    its own loops, in threads, beside the server's).
    """

    def __init__(self) -> None:
        self._fingerprint: Fingerprint | None = None
        self._memory: CacheStore | None = None
        self._redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CacheStore]
        self._redis = weakref.WeakKeyDictionary()
        self._inflight: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[object, ...], asyncio.Future[bytes]]
        ] = weakref.WeakKeyDictionary()
        self._down_until = 0.0
        self._pending: set[str] = set()
        self._generation = 0  # bumped by every invalidation in this process
        self._max_ttl = 0.0
        self.used = False

    # --- public API ----------------------------------------------------------------------

    def register_ttl(self, ttl: float) -> None:
        """Version tokens must outlive every entry stamped with them (see `_version_ttl`)."""
        self._max_ttl = max(self._max_ttl, ttl)

    async def fetch(self, key: str, tags: Sequence[str], ttl: float, compute: ComputeFn) -> Any:
        """The cached value of `key`, computing (once) and storing it on a miss."""
        names = (key, *tags)
        store = await self._store_if_available()
        snapshot: _Snapshot | None = None
        if store is not None:
            snapshot = await self._read_or_none(store, key, names)
            if snapshot is not None and snapshot.payload is not None:
                return snapshot.data
        stamps = snapshot.stamps if snapshot is not None else None
        flights = self._flights()
        flight_key = (key, stamps, self._generation)
        running = flights.get(flight_key)
        if running is not None:
            return await self._join(running, key, tags, ttl, compute)

        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        flights[flight_key] = future
        try:
            value, payload = await self._lead(store, snapshot, key, names, ttl, compute)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without followers
            raise
        else:
            future.set_result(payload)
            return value
        finally:
            if flights.get(flight_key) is future:
                del flights[flight_key]

    async def invalidate(self, *names: str) -> None:
        """Make every entry that depends on one of `names` (keys or tags) a miss, everywhere."""
        if not names:
            return
        self._generation += 1
        self._pending.update(names)
        store = await self._store()
        try:
            await self._write_pending(store)
        except _Unavailable:
            logger.warning(
                "cache invalidation of %s is deferred until the cache backend answers again; "
                "until then other processes may serve the old values (at most their TTL)",
                ", ".join(sorted(names)),
            )

    async def reset(self, *, clear: bool = False) -> None:
        """Forget every store and all state; the next call rebuilds from the settings.

        With `clear`, first delete every cached entry (of the current settings' backend), if
        the cache was used since the last reset. Meant for tests and for shutdown.
        """
        try:
            if clear and self.used:
                self._fingerprint = None  # settings may have changed back: rebuild first
                store = await self._store()
                try:
                    await store.clear(settings.CACHE_KEY_PREFIX)
                except Exception as error:
                    logger.warning("cache: could not clear %s (%s)", store.description, error)
        finally:
            await self._close_stores()
            self._down_until = 0.0
            self._pending.clear()
            self._inflight = weakref.WeakKeyDictionary()
            self.used = False

    # --- stores --------------------------------------------------------------------------

    async def _store(self) -> CacheStore:
        current = fingerprint(settings)
        if current != self._fingerprint:
            self._fingerprint = current
            self._down_until = 0.0
            await self._close_stores()
        self.used = True
        if settings.CACHE_BACKEND == "memory":
            if self._memory is None:
                self._memory = build_store(settings)
                await self._memory.open()
            return self._memory
        loop = asyncio.get_running_loop()
        store = self._redis.get(loop)
        if store is None:
            store = build_store(settings)
            await store.open()
            self._redis[loop] = store
        return store

    async def _store_if_available(self) -> CacheStore | None:
        """The store, or None while a failed backend is being left alone."""
        store = await self._store()
        if time.monotonic() < self._down_until:
            return None
        if self._pending:
            try:
                await self._write_pending(store)
            except _Unavailable:
                return None
        return store

    async def _close_stores(self) -> None:
        stores = [self._memory] if self._memory is not None else []
        loop = asyncio.get_running_loop()
        current = self._redis.get(loop)
        if current is not None:
            stores.append(current)
        # Clients of other (possibly closed) loops cannot be closed from here; dropped.
        self._memory = None
        self._redis = weakref.WeakKeyDictionary()
        for store in stores:
            try:
                await store.close()
            except Exception as error:  # closing a broken connection may fail; harmless
                logger.debug("cache: closing %s failed: %s", store.description, error)

    def _flights(self) -> dict[tuple[object, ...], asyncio.Future[bytes]]:
        loop = asyncio.get_running_loop()
        flights = self._inflight.get(loop)
        if flights is None:
            flights = self._inflight[loop] = {}
        return flights

    # --- failing open --------------------------------------------------------------------

    async def _guard(self, store: CacheStore, operation: Awaitable[Any]) -> Any:
        """Await a backend operation; on any error, fail open (warn once, back off)."""
        try:
            return await operation
        except Exception as error:
            if time.monotonic() >= self._down_until:
                cause = error.__cause__ or error  # cashews wraps the driver's error
                logger.warning(
                    "cache backend %s failed (%s: %s); serving without the cache for %.0fs",
                    store.description,
                    type(cause).__name__,
                    cause,
                    RETRY_AFTER_SECONDS,
                )
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            raise _Unavailable from error

    async def _write_pending(self, store: CacheStore) -> None:
        names = set(self._pending)
        tokens = {self._version_key(name): _token() for name in names}
        await self._guard(store, store.set_many(tokens, self._version_ttl()))
        self._pending -= names

    # --- reads and writes ------------------------------------------------------------------

    async def _read(self, store: CacheStore, key: str, names: Sequence[str]) -> _Snapshot:
        prefix = settings.CACHE_KEY_PREFIX
        keys = [f"{prefix}d:{key}", f"{prefix}l:{key}", *map(self._version_key, names)]
        payload, lock, *versions = await self._guard(store, store.get_many(keys))
        stamps = tuple(version if isinstance(version, int) else None for version in versions)
        locked = lock is not None
        if isinstance(payload, bytes):
            try:
                entry = json.loads(payload)
            except ValueError:  # not ours, or damaged: a miss, and overwritten
                entry = None
            if isinstance(entry, dict) and tuple(entry.get("s") or ()) == stamps:
                return _Snapshot(payload, entry.get("d"), stamps, locked)
        return _Snapshot(None, None, stamps, locked)

    async def _read_or_none(
        self, store: CacheStore, key: str, names: Sequence[str]
    ) -> _Snapshot | None:
        try:
            return await self._read(store, key, names)
        except _Unavailable:
            return None

    async def _lead(
        self,
        store: CacheStore | None,
        snapshot: _Snapshot | None,
        key: str,
        names: Sequence[str],
        ttl: float,
        compute: ComputeFn,
    ) -> tuple[Any, bytes]:
        """Compute the value (unless it was stored meanwhile) and store it."""
        if store is None or snapshot is None:  # no backend right now: just compute
            return await _computed(compute, None)
        prefix = settings.CACHE_KEY_PREFIX
        lock_key = f"{prefix}l:{key}"
        token = _token() if store.shared else None
        try:
            try:
                if token is not None and not await self._guard(
                    store, store.try_lock(lock_key, token, LOCK_TTL_SECONDS)
                ):
                    token = None
                    snapshot = await self._wait_for_other_process(store, key, names)
                else:
                    # Read again: a miss can race with the store of a computation that ended
                    # just before this one was registered.
                    snapshot = await self._read(store, key, names)
            except _Unavailable:
                return await _computed(compute, None)
            if snapshot.payload is not None:
                return snapshot.data, snapshot.payload
            value, payload = await _computed(compute, snapshot.stamps)
            with contextlib.suppress(_Unavailable):
                await self._guard(store, store.set(f"{prefix}d:{key}", payload, ttl))
            return value, payload
        finally:
            if token is not None and time.monotonic() >= self._down_until:
                with contextlib.suppress(_Unavailable):  # else it expires on its own
                    await self._guard(store, store.unlock(lock_key, token))

    async def _wait_for_other_process(
        self, store: CacheStore, key: str, names: Sequence[str]
    ) -> _Snapshot:
        """Poll until the lock holder stored the value, let go, or took too long."""
        deadline = time.monotonic() + LOCK_TTL_SECONDS
        while True:
            await asyncio.sleep(LOCK_POLL_SECONDS)
            snapshot = await self._read(store, key, names)
            if snapshot.payload is not None or not snapshot.locked:
                return snapshot
            if time.monotonic() >= deadline:
                return snapshot

    async def _join(
        self,
        running: asyncio.Future[bytes],
        key: str,
        tags: Sequence[str],
        ttl: float,
        compute: ComputeFn,
    ) -> Any:
        """Wait for the computation another request of this process started."""
        try:
            return _decode(await asyncio.shield(running))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if running.cancelled() and not (task is not None and task.cancelling()):
                # The leading request was cancelled (client gone), not this one: start over.
                return await self.fetch(key, tags, ttl, compute)
            raise

    def _version_key(self, name: str) -> str:
        return f"{settings.CACHE_KEY_PREFIX}v:{name}"

    def _version_ttl(self) -> float:
        # Entries are stamped "no token yet" until a name's first invalidation; if its token
        # expired while such an entry lived, the entry would be current again. Outliving
        # every TTL (twice, plus the longest computation) rules that out.
        longest = max(self._max_ttl, float(settings.CACHE_DEFAULT_TTL_SECONDS))
        return max(MIN_VERSION_TTL_SECONDS, 2 * longest + LOCK_TTL_SECONDS)


def _token() -> int:
    # Random, never a counter: a token that expired and came back must not match old entries.
    return secrets.randbits(62) + 1


async def _computed(compute: ComputeFn, stamps: tuple[int | None, ...] | None) -> tuple[Any, bytes]:
    value = await compute()
    return value, to_json({"s": stamps, "d": value})


def _decode(payload: bytes) -> Any:
    return json.loads(payload)["d"]


_manager = CacheManager()


def get_cache_manager() -> CacheManager:
    return _manager
