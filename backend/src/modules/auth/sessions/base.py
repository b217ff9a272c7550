"""What every session store shares: the caller (`Principal`), a resolved session
(`SessionContext`) and the store protocol.

`Principal` is declared once: its database fields are the columns the session lookup selects
(`PRINCIPAL_COLUMNS` is derived from them), so the caller and the query cannot drift apart.
Its `permissions` come in that same statement: `PRINCIPAL_COLUMNS` ends with a correlated
scalar subquery over the user's roles (`user_roles` JOIN `role_permissions`), aggregated into
one comma-separated string by `comma_joined` (`string_agg` on Postgres, `group_concat` on
SQLite). A permission check costs no round trip, and since nothing caches it,
a role or permission change applies from the caller's next request, on every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.database.functions import comma_joined
from src.modules.rbac.models import RolePermission, UserRole
from src.modules.user.models import User

Via = Literal["session", "apikey"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Routes, services and the rate limiter take this, never a dict.

    Every field but `permissions`, `scopes` and `via` is a column of `users`, read by the
    session lookup; `permissions` is read by the same statement (see above).
    """

    id: int
    username: str
    email: str
    name: str
    is_superuser: bool
    tier_id: int | None
    is_verified: bool
    created_at: datetime
    # The names of the permissions the user's roles hold (a superuser passes every check
    # whatever this holds: see `allows`). An API key's principal has its owner's.
    permissions: frozenset[str] = field(default=frozenset())
    # What the credential may do: empty for a session (the user's full rights); an API key
    # carries its own scopes.
    scopes: frozenset[str] = field(default=frozenset())
    via: Via = "session"

    def profile(self) -> dict[str, Any]:
        """The user fields (what `UserRead` shows), without copying anything deep."""
        return {name: getattr(self, name) for name in PRINCIPAL_FIELDS}

    def missing(self, names: Iterable[str]) -> list[str]:
        """Which of `names` this caller lacks, sorted (none for a superuser)."""
        if self.is_superuser:
            return []
        return sorted(set(names) - self.permissions)

    def allows(self, names: Iterable[str]) -> bool:
        """Whether this caller holds every one of `names` (a superuser holds them all)."""
        return not self.missing(names)

    @classmethod
    def from_row(
        cls, row: Sequence[Any], *, via: Via = "session", scopes: frozenset[str] = frozenset()
    ) -> Principal:
        """Build from a row that selected `PRINCIPAL_COLUMNS`, in their order."""
        *values, permissions = row
        return cls(
            **dict(zip(PRINCIPAL_FIELDS, values, strict=True)),
            permissions=frozenset(permissions.split(",")) if permissions else frozenset(),
            scopes=scopes,
            via=via,
        )


_NOT_COLUMNS = frozenset({"permissions", "scopes", "via"})
PRINCIPAL_FIELDS: Final = tuple(f.name for f in fields(Principal) if f.name not in _NOT_COLUMNS)
"""The `users` columns of a `Principal` (what `profile()` shows)."""


def _permissions_of_user() -> ColumnElement[str | None]:
    """The user's permission names, comma-separated (NULL without any), correlated to the
    `users` row of the enclosing query. Permission names never hold a comma (the registry's
    alphabet, `src.modules.common.permissions`)."""
    return (
        select(comma_joined(RolePermission.permission))
        .select_from(UserRole)
        .join(RolePermission, RolePermission.role_id == UserRole.role_id)
        .where(UserRole.user_id == User.id)
        .correlate(User)
        .scalar_subquery()
        .label("permissions")
    )


PRINCIPAL_COLUMNS: Final[tuple[ColumnElement[Any], ...]] = (
    *(getattr(User, name) for name in PRINCIPAL_FIELDS),
    _permissions_of_user(),
)
"""What the session and API-key lookups select: the `users` columns, then the permissions."""


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
