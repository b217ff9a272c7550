"""The process's Redis client for `REDIS_URL`, with short timeouts so a dead server fails fast.

redis-py's asyncio client keeps a connection pool bound to the event loop that created it, so
one client is kept per (URL, loop).
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from src.infrastructure.config import settings

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
