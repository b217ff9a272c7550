"""The process's Redis client for `REDIS_URL`, with short timeouts so a dead server fails fast.

redis-py's asyncio client keeps a connection pool bound to the event loop that created it, so
one client is kept per (URL, loop).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from src.infrastructure.config import settings

PERSISTENCE_CHECK_SECONDS = 1.0
_clients: dict[tuple[str, str | None, int], Redis] = {}


class RedisNotConfiguredError(RuntimeError):
    pass


def get_redis(url: str | None = None, *, password: str | None = None) -> Redis:
    """The shared client for `url` (default `REDIS_URL`) on this event loop."""
    url = url or settings.REDIS_URL
    if not url:
        raise RedisNotConfiguredError("REDIS_URL is not set but a Redis backend is configured")
    key = (url, password, id(asyncio.get_running_loop()))
    client = _clients.get(key)
    if client is None:
        client = Redis.from_url(
            url,
            password=password,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=2,
            health_check_interval=30,
        )
        _clients[key] = client
    return client


async def close_redis_clients() -> None:
    loop = id(asyncio.get_running_loop())
    for key in [key for key in _clients if key[2] == loop]:
        await _clients.pop(key).aclose()


async def persistence_warning(url: str | None = None) -> str | None:
    """A warning when the Redis at `url` (default `REDIS_URL`) keeps nothing on disk (neither
    AOF nor RDB snapshots): sessions stored there die with a restart. Best effort: None when
    it persists, or cannot be asked (down, or CONFIG disabled as on many managed services)."""
    url = url or settings.REDIS_URL
    if not url:
        return None
    timeout = PERSISTENCE_CHECK_SECONDS
    client = Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout)
    try:
        async with asyncio.timeout(timeout):
            appendonly = (await client.config_get("appendonly")).get("appendonly")
            save = (await client.config_get("save")).get("save")
    except Exception:  # down, timeout, CONFIG renamed or forbidden: nothing to say
        return None
    finally:
        await client.aclose()
    if appendonly == "yes" or save:
        return None
    return (
        "the Redis holding the sessions (REDIS_URL) persists nothing (appendonly no, save ''): "
        "a Redis restart signs every user out; enable AOF or RDB snapshots"
    )
