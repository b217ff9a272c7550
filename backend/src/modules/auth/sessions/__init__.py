"""Server-side sessions behind one interface, the store chosen by `SESSION_BACKEND`.

- `database` (`database.py`): the `user_sessions` table; one joined query per request.

Every store builds the `Principal` from `PRINCIPAL_COLUMNS`, the user's permissions included.
- `redis` / `memory` (`keyvalue.py`): a record per session with a TTL plus a per-user index;
  one key-value read plus one user query per request.

Other slices end sessions through `end_sessions` (a password change, a soft delete, a reset),
never by reaching into a store.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.config import settings
from src.modules.auth.sessions.base import (
    PRINCIPAL_COLUMNS,
    Principal,
    SessionContext,
    SessionStore,
)
from src.modules.auth.sessions.database import DatabaseSessionStore
from src.modules.auth.sessions.keyvalue import (
    KeyValueSessionStore,
    MemorySessionBackend,
    RedisSessionBackend,
)

__all__ = [
    "PRINCIPAL_COLUMNS",
    "Principal",
    "SessionContext",
    "SessionStore",
    "end_sessions",
    "get_session_store",
]


@cache
def _store(backend: str) -> SessionStore:
    if backend == "redis":
        return KeyValueSessionStore(RedisSessionBackend())
    if backend == "memory":
        return KeyValueSessionStore(MemorySessionBackend())
    return DatabaseSessionStore()


def get_session_store() -> SessionStore:
    """The store `SESSION_BACKEND` names (read per call, so tests can switch it)."""
    return _store(settings.SESSION_BACKEND)


async def end_sessions(
    db: AsyncSession, *, user_id: int, keep_session_id: str | None = None
) -> None:
    """End every session of `user_id` but `keep_session_id`.

    Call it before the commit of the change that causes it: in the database store it is the
    same transaction; in Redis a failure aborts the change instead of leaving sessions alive.
    """
    await get_session_store().delete_for_user(db, user_id=user_id, keep_session_id=keep_session_id)
