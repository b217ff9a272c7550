"""What every session store shares: the caller (`Principal`), a resolved session
(`SessionContext`) and the store protocol.

`Principal` is declared once: its database fields are the columns the session lookup selects
(`PRINCIPAL_COLUMNS` is derived from them), so the caller and the query cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from src.modules.user.models import User

Via = Literal["session", "apikey"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Routes, services and the rate limiter take this, never a dict.

    Every field but `scopes` and `via` is a column of `users`, read by the session lookup.
    """

    id: int
    username: str
    email: str
    name: str
    is_superuser: bool
    tier_id: int | None
    is_verified: bool
    created_at: datetime
    # What the credential may do: empty for a session (the user's full rights); an API key
    # carries its own scopes.
    scopes: frozenset[str] = field(default=frozenset())
    via: Via = "session"

    def profile(self) -> dict[str, Any]:
        """The user fields (what `UserRead` shows), without copying anything deep."""
        return {name: getattr(self, name) for name in PRINCIPAL_FIELDS}

    @classmethod
    def from_row(cls, row: Sequence[Any], *, via: Via = "session") -> Principal:
        """Build from a row that selected `PRINCIPAL_COLUMNS`, in their order."""
        return cls(**dict(zip(PRINCIPAL_FIELDS, row, strict=True)), via=via)


_NOT_COLUMNS = frozenset({"scopes", "via"})
PRINCIPAL_FIELDS: Final = tuple(f.name for f in fields(Principal) if f.name not in _NOT_COLUMNS)
PRINCIPAL_COLUMNS: Final[tuple[InstrumentedAttribute[Any], ...]] = tuple(
    getattr(User, name) for name in PRINCIPAL_FIELDS
)


@dataclass(frozen=True, slots=True)
class SessionContext:
    """A resolved session: who is calling, through which session."""

    session_id: str
    token: str
    principal: Principal


class SessionStore(Protocol):
    async def create(
        self,
        db: AsyncSession,
        *,
        user_id: int,
        ip_address: str | None,
        user_agent: str | None,
    ) -> str:
        """Open a session for `user_id`; return its token (the only time it exists in clear)."""

    async def resolve(self, db: AsyncSession, token: str) -> SessionContext | None:
        """The live session behind `token` with its user, or None (unknown, expired, deleted)."""

    async def list_for_user(self, db: AsyncSession, *, user_id: int) -> list[dict[str, Any]]: ...

    async def delete_by_token(self, db: AsyncSession, token: str) -> tuple[str, int] | None:
        """End the session behind `token`; its (session id, user id), or None if none."""

    async def delete_by_id(self, db: AsyncSession, *, session_id: str, user_id: int) -> bool:
        """Delete one of `user_id`'s sessions; False when it is not theirs or does not exist."""

    async def delete_for_user(
        self, db: AsyncSession, *, user_id: int, keep_session_id: str | None = None
    ) -> None: ...
