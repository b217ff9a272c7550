"""The database session store (`SESSION_BACKEND=database`): create, resolve (one joined
query), list and revoke sessions.

Written with SQLAlchemy Core rather than FastCRUD because resolving the caller is the hot path
of every authenticated request: one round trip returns the session and its user together
(with the user's permissions, `PRINCIPAL_COLUMNS`), and
`last_seen_at` is written at most once per `SESSION_TOUCH_INTERVAL_SECONDS`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.tokens import hash_token, new_token
from src.infrastructure.config import settings
from src.infrastructure.database.models import UTCDateTime, utcnow
from src.infrastructure.database.statements import fetch_row, prebuilt
from src.modules.auth.models import UserSession
from src.modules.auth.sessions.base import PRINCIPAL_COLUMNS, Principal, SessionContext
from src.modules.user.models import User

# Built once: the hot path binds values only, so SQLAlchemy reuses the compiled statement.
_RESOLVE = prebuilt(
    select(UserSession.id, UserSession.last_seen_at, *PRINCIPAL_COLUMNS)
    .join(User, User.id == UserSession.user_id)
    .where(
        UserSession.token_hash == bindparam("token_hash"),
        UserSession.expires_at > bindparam("now", type_=UTCDateTime()),
        UserSession.last_seen_at > bindparam("idle_cutoff", type_=UTCDateTime()),
        User.is_deleted.is_(False),
    )
)
_TOUCH = (
    update(UserSession)
    .where(UserSession.id == bindparam("session_id"))
    .values(last_seen_at=bindparam("now", type_=UTCDateTime()))
)


class DatabaseSessionStore:
    async def create(
        self, db: AsyncSession, *, user_id: int, ip_address: str | None, user_agent: str | None
    ) -> str:
        """Add a session for `user_id` and return its token (the only time it exists in clear)."""
        token = new_token()
        now = utcnow()
        db.add(
            UserSession(
                id=uuid.uuid4().hex,
                token_hash=hash_token(token),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS),
                ip_address=ip_address,
                user_agent=(user_agent or "")[:255] or None,
            )
        )
        await db.flush()
        await self._trim(db, user_id=user_id, now=now)
        return token

    async def resolve(self, db: AsyncSession, token: str) -> SessionContext | None:
        """The live session behind `token` with its user, or None (unknown, expired, deleted)."""
        now = utcnow()
        idle_cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
        # A prebuilt statement on the session's connection: same transaction, no ORM.
        row = await fetch_row(
            db, _RESOLVE, {"token_hash": hash_token(token), "now": now, "idle_cutoff": idle_cutoff}
        )
        if row is None:
            return None
        session_id, last_seen_at, *values = row
        if now - last_seen_at > timedelta(seconds=settings.SESSION_TOUCH_INTERVAL_SECONDS):
            await (await db.connection()).execute(_TOUCH, {"session_id": session_id, "now": now})
            await db.commit()
        return SessionContext(
            session_id=session_id, token=token, principal=Principal.from_row(values)
        )

    async def list_for_user(self, db: AsyncSession, *, user_id: int) -> list[dict[str, Any]]:
        now = utcnow()
        idle_cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
        rows = await db.execute(
            select(
                UserSession.id,
                UserSession.created_at,
                UserSession.last_seen_at,
                UserSession.expires_at,
                UserSession.ip_address,
                UserSession.user_agent,
            )
            .where(
                UserSession.user_id == user_id,
                UserSession.expires_at > now,
                UserSession.last_seen_at > idle_cutoff,
            )
            .order_by(UserSession.last_seen_at.desc())
        )
        return [dict(row._mapping) for row in rows]

    async def delete_by_token(self, db: AsyncSession, token: str) -> tuple[str, int] | None:
        ended = await db.execute(
            delete(UserSession)
            .where(UserSession.token_hash == hash_token(token))
            .returning(UserSession.id, UserSession.user_id)
        )
        row = ended.first()
        return (str(row[0]), int(row[1])) if row is not None else None

    async def delete_by_id(self, db: AsyncSession, *, session_id: str, user_id: int) -> bool:
        """Delete one of `user_id`'s sessions; False when it is not theirs or does not exist."""
        result = await db.execute(
            delete(UserSession).where(UserSession.id == session_id, UserSession.user_id == user_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete_for_user(
        self, db: AsyncSession, *, user_id: int, keep_session_id: str | None = None
    ) -> None:
        statement = delete(UserSession).where(UserSession.user_id == user_id)
        if keep_session_id is not None:
            statement = statement.where(UserSession.id != keep_session_id)
        await db.execute(statement)

    async def _trim(self, db: AsyncSession, *, user_id: int, now: datetime) -> None:
        """Drop expired sessions and the oldest ones beyond `SESSION_MAX_PER_USER`."""
        idle_cutoff = now - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
        await db.execute(
            delete(UserSession).where(
                UserSession.user_id == user_id,
                (UserSession.expires_at <= now) | (UserSession.last_seen_at <= idle_cutoff),
            )
        )
        keep = (
            select(UserSession.id)
            .where(UserSession.user_id == user_id)
            .order_by(UserSession.last_seen_at.desc(), UserSession.created_at.desc())
            .limit(settings.SESSION_MAX_PER_USER)
        )
        await db.execute(
            delete(UserSession).where(UserSession.user_id == user_id, UserSession.id.not_in(keep))
        )
