"""Which Redis the tests use: `TEST_REDIS_URL` (default redis://127.0.0.1:6379), with a
database number of its own for each pytest-xdist worker of each run, so neither parallel
workers nor two test runs on one host ever share keys (a `flushdb` in one would wipe the other).

The numbers 1-15 are leased in database 0 (`SET backend-tests:db:<n> <owner> NX EX`), given
back when the process exits, and expire on their own after a crash. With every number taken,
the worker falls back to its worker index and says so.

When `TEST_REDIS_URL` is unset and no Redis answers, the tests that exercise Redis itself are
skipped with the reason printed in the report header and summary; an explicitly set URL that
does not answer fails them instead.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import socket

from redis.asyncio import Redis

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379"


def redis_fallback_reason() -> str | None:
    """Why the Redis tests cannot run, or None when they can (or must)."""
    if os.environ.get("TEST_REDIS_URL"):
        return None
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return None
    except OSError:
        return (
            "no Redis answers at 127.0.0.1:6379 and TEST_REDIS_URL is unset: the tests of the "
            "Redis backends are skipped and the shared state stays in memory. Set TEST_REDIS_URL "
            "to require a server."
        )


LEASE_SECONDS = 4 * 60 * 60
_LEASE_KEY = "backend-tests:db:{}"


@functools.cache
def redis_url_for_tests() -> str:
    base = (os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL).rstrip("/")
    if base.rsplit("/", 1)[-1].isdigit() and base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    leased = _lease_database(base)
    return f"{base}/{leased if leased is not None else 1 + index % 15}"


def _lease_database(base: str) -> int | None:
    """A database number 1-15 that no other test process holds, or None (no Redis, or all
    taken: the caller falls back to the worker index)."""
    from redis import Redis as SyncRedis
    from redis.exceptions import RedisError

    owner = f"{socket.gethostname()}:{os.getpid()}"
    try:
        client = SyncRedis.from_url(f"{base}/0", socket_connect_timeout=1, socket_timeout=2)
        for number in range(1, 16):
            if client.set(_LEASE_KEY.format(number), owner, nx=True, ex=LEASE_SECONDS):
                atexit.register(_release, client, number, owner)
                return number
    except (RedisError, OSError):
        return None
    print(
        "every Redis test database (1-15) is leased by other test runs: sharing one by worker "
        "index, so runs may interfere"
    )
    return None


# Deletes the lease only if this process still holds it.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"


def _release(client: object, number: int, owner: str) -> None:
    from redis.exceptions import RedisError

    with contextlib.suppress(RedisError, OSError):
        client.eval(_RELEASE, 1, _LEASE_KEY.format(number), owner)  # type: ignore[attr-defined]


async def flush(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def unreachable_message(url: str, error: BaseException) -> str:
    return (
        f"The Redis tests need the server at {url}, which did not answer "
        f"({type(error).__name__}: {error}). Start Redis (see docs/testing.md) or point "
        "TEST_REDIS_URL at one. The embedded profile (TEST_DATABASE_URL=sqlite+aiosqlite://) "
        "needs no Redis."
    )
