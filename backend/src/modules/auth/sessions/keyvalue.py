"""The key-value session stores (`SESSION_BACKEND=redis` or `memory`).

- `redis`: a hash per session under `session:<token hash>` with a TTL equal to the time left
  before the idle or absolute timeout, plus a sorted set per user (for listing, logout
  everywhere and the per-user cap). Resolving costs one Redis read plus one user query (which
  also reads the user's permissions: the record holds none, so none can go stale).
- `memory`: the same layout in a dict, for one process (tests, demos).

The key-value logic is written once (`KeyValueSessionStore`) over a four-method backend, so the
Redis and memory stores cannot drift apart.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.tokens import hash_token, new_token
from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.redis_client import get_redis
from src.modules.auth.sessions.base import PRINCIPAL_COLUMNS, Principal, SessionContext
from src.modules.user.models import User


class KeyValueBackend(Protocol):
    """Where a key-value session store keeps its records."""

    async def put(self, key: str, record: dict[str, str], ttl: int, user_id: int) -> None: ...

    async def get(self, key: str) -> dict[str, str] | None: ...

    async def delete(self, keys: list[str], user_id: int) -> None: ...

    async def keys_for_user(self, user_id: int) -> list[str]: ...

    async def touch(self, key: str, last_seen_at: str, ttl: int, user_id: int) -> None:
        """Refresh last-seen and TTL of an existing record; never recreate a deleted one."""


def _ts(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


def _dt(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


class KeyValueSessionStore:
    def __init__(self, backend: KeyValueBackend) -> None:
        self.backend = backend

    def _ttl(self, record: dict[str, str], now: datetime) -> int:
        absolute = _dt(record["expires_at"]) - now
        idle = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
        return max(1, int(min(absolute, idle).total_seconds()))

    def _alive(self, record: dict[str, str], now: datetime) -> bool:
        idle = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
        return _dt(record["expires_at"]) > now and _dt(record["last_seen_at"]) > now - idle

    async def create(
        self, db: AsyncSession, *, user_id: int, ip_address: str | None, user_agent: str | None
    ) -> str:
        token = new_token()
        now = utcnow()
        expires = now + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)
        record = {
            "id": uuid.uuid4().hex,
            "user_id": str(user_id),
            "created_at": _ts(now),
            "last_seen_at": _ts(now),
            "expires_at": _ts(expires),
            "ip_address": ip_address or "",
            "user_agent": (user_agent or "")[:255],
        }
        await self.backend.put(hash_token(token), record, self._ttl(record, now), user_id)
        await self._trim(user_id)
        return token

    async def resolve(self, db: AsyncSession, token: str) -> SessionContext | None:
        key = hash_token(token)
        record = await self.backend.get(key)
        now = utcnow()
        if record is None or not self._alive(record, now):
            return None
        row = (
            await (await db.connection()).execute(
                select(*PRINCIPAL_COLUMNS).where(
                    User.id == int(record["user_id"]), User.is_deleted.is_(False)
                )
            )
        ).first()
        if row is None:
            return None
        touch = timedelta(seconds=settings.SESSION_TOUCH_INTERVAL_SECONDS)
        if now - _dt(record["last_seen_at"]) > touch:
            record["last_seen_at"] = _ts(now)
            # Only if still there: a logout racing this request must not be undone.
            await self.backend.touch(
                key, record["last_seen_at"], self._ttl(record, now), int(record["user_id"])
            )
        return SessionContext(
            session_id=record["id"], token=token, principal=Principal.from_row(row)
        )

    async def _records(self, user_id: int) -> list[tuple[str, dict[str, str]]]:
        now = utcnow()
        found: list[tuple[str, dict[str, str]]] = []
        stale: list[str] = []
        for key in await self.backend.keys_for_user(user_id):
            record = await self.backend.get(key)
            if record is not None and self._alive(record, now):
                found.append((key, record))
            else:
                stale.append(key)
        if stale:
            await self.backend.delete(stale, user_id)
        found.sort(key=lambda item: float(item[1]["last_seen_at"]), reverse=True)
        return found

    async def list_for_user(self, db: AsyncSession, *, user_id: int) -> list[dict[str, Any]]:
        return [
            {
                "id": record["id"],
                "created_at": _dt(record["created_at"]),
                "last_seen_at": _dt(record["last_seen_at"]),
                "expires_at": _dt(record["expires_at"]),
                "ip_address": record["ip_address"] or None,
                "user_agent": record["user_agent"] or None,
            }
            for _, record in await self._records(user_id)
        ]

    async def delete_by_token(self, db: AsyncSession, token: str) -> tuple[str, int] | None:
        key = hash_token(token)
        record = await self.backend.get(key)
        if record is None:
            return None
        user_id = int(record["user_id"])
        await self.backend.delete([key], user_id)
        return str(record["id"]), user_id

    async def delete_by_id(self, db: AsyncSession, *, session_id: str, user_id: int) -> bool:
        for key, record in await self._records(user_id):
            if record["id"] == session_id:
                await self.backend.delete([key], user_id)
                return True
        return False

    async def delete_for_user(
        self, db: AsyncSession, *, user_id: int, keep_session_id: str | None = None
    ) -> None:
        keys = [
            key for key, record in await self._records(user_id) if record["id"] != keep_session_id
        ]
        if keys:
            await self.backend.delete(keys, user_id)

    async def _trim(self, user_id: int) -> None:
        extra = (await self._records(user_id))[settings.SESSION_MAX_PER_USER :]
        if extra:
            await self.backend.delete([key for key, _ in extra], user_id)


class RedisSessionBackend:
    """Records as Redis hashes with TTLs; a sorted set per user indexes them."""

    prefix = "session:"

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}user:{user_id}"

    async def put(self, key: str, record: dict[str, str], ttl: int, user_id: int) -> None:
        redis = get_redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.prefix + key, mapping=dict[Any, Any](record))
            pipe.expire(self.prefix + key, ttl)
            pipe.zadd(self._user_key(user_id), {key: float(record["last_seen_at"])})
            pipe.expire(self._user_key(user_id), settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)
            await pipe.execute()

    async def get(self, key: str) -> dict[str, str] | None:
        record = await get_redis().hgetall(self.prefix + key)
        return {str(field): str(value) for field, value in record.items()} or None

    async def delete(self, keys: list[str], user_id: int) -> None:
        redis = get_redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(self.prefix + key for key in keys))
            pipe.zrem(self._user_key(user_id), *keys)
            await pipe.execute()

    async def keys_for_user(self, user_id: int) -> list[str]:
        keys = await get_redis().zrange(self._user_key(user_id), 0, -1)
        return [str(key) for key in keys]

    # Atomic "update if it still exists": a plain HSET would resurrect a session deleted
    # between this request's read and its write.
    _TOUCH = """
    if redis.call('EXISTS', KEYS[1]) == 1 then
        redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1])
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
    end
    return 0
    """

    async def touch(self, key: str, last_seen_at: str, ttl: int, user_id: int) -> None:
        keys = [self.prefix + key, self._user_key(user_id)]
        await get_redis().eval(self._TOUCH, 2, *keys, last_seen_at, ttl, key)


class MemorySessionBackend:
    """The Redis layout in process memory; expiry is checked on read."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[dict[str, str], float]] = {}
        self.by_user: dict[int, set[str]] = {}

    async def put(self, key: str, record: dict[str, str], ttl: int, user_id: int) -> None:
        self.records[key] = (dict(record), time.monotonic() + ttl)
        self.by_user.setdefault(user_id, set()).add(key)

    async def get(self, key: str) -> dict[str, str] | None:
        entry = self.records.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return dict(entry[0])

    async def delete(self, keys: list[str], user_id: int) -> None:
        for key in keys:
            self.records.pop(key, None)
            self.by_user.get(user_id, set()).discard(key)

    async def keys_for_user(self, user_id: int) -> list[str]:
        return sorted(self.by_user.get(user_id, set()))

    async def touch(self, key: str, last_seen_at: str, ttl: int, user_id: int) -> None:
        entry = self.records.get(key)
        if entry is not None:
            entry[0]["last_seen_at"] = last_seen_at
            self.records[key] = (entry[0], time.monotonic() + ttl)
