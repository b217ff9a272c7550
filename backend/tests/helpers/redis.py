"""Which Redis the tests use: `TEST_REDIS_URL` (default redis://127.0.0.1:6379), with one
database number per pytest-xdist worker (1, 2, ...) so parallel runs never share keys.

When `TEST_REDIS_URL` is unset and no Redis answers, the tests that exercise Redis itself are
skipped with the reason printed in the report header and summary; an explicitly set URL that
does not answer fails them instead.
"""

from __future__ import annotations

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


def redis_url_for_tests() -> str:
    base = (os.environ.get("TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL).rstrip("/")
    if base.rsplit("/", 1)[-1].isdigit() and base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return f"{base}/{1 + index % 15}"


async def flush(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def unreachable_message(url: str, error: BaseException) -> str:
    return (
        f"The Redis tests need the server at {url}, which did not answer "
        f"({type(error).__name__}: {error}). Start Redis (see README) or point TEST_REDIS_URL "
        "at one. The embedded profile (TEST_DATABASE_URL=sqlite+aiosqlite://) needs no Redis."
    )
