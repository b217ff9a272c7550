"""Writing, reading and pruning audit events.

`record` adds the row to the caller's session and never flushes or commits: the row is written
by the commit of the change it records, so a change that rolls back (a refused request, a
failed commit) leaves no row, and a committed change always has one. It costs no round trip of
its own (the INSERT rides in the commit's flush). A failed sign-in has no change to join, so
its caller commits the row alone before answering 401.

`data` is for small non-secret details: `record` refuses keys that name secrets (passwords,
tokens, codes, hashes, key material), so a slip is a failing test, not a leaked secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Final

from fastcrud import FastCRUD
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.database.models import utcnow
from src.modules.audit.context import USER_AGENT_MAX, AuditContext
from src.modules.audit.kinds import AuditKind, Outcome, TargetType
from src.modules.audit.models import AuditEvent
from src.modules.audit.schemas import AuditEventRead
from src.modules.common.schemas import MAX_ID, PageParams, build_page
from src.modules.user.models import User

crud_audit_events: FastCRUD[AuditEvent, Any, Any, Any, Any, Any] = FastCRUD(AuditEvent)

# A `data` key containing any of these is refused: audit rows never hold secrets.
SECRET_KEY_FRAGMENTS: Final = (
    "password",
    "passwd",
    "token",
    "secret",
    "hash",
    "code",
    "otp",
    "cipher",
    "credential",
)


@dataclass(frozen=True, slots=True)
class Target:
    """What an event acted on: an object (`type` + `id`) and, when it belongs to a user (or is
    one), that user's id, so one filter finds everything that happened to an account."""

    type: TargetType
    id: str | None = None
    user_id: int | None = None

    @classmethod
    def user(cls, user_id: int) -> Target:
        return cls(TargetType.USER, str(user_id), user_id)

    @classmethod
    def of(cls, type_: TargetType, id_: object, *, user_id: int | None = None) -> Target:
        return cls(type_, str(id_), user_id)


_UNSET: Any = object()


def record(
    db: AsyncSession,
    kind: AuditKind,
    context: AuditContext,
    *,
    target: Target | None = None,
    actor_id: int | None = _UNSET,
    reason: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Add an audit row to `db`'s transaction (the caller commits it with its change).

    `actor_id` defaults to the request's caller (`context.actor_id`); pass it when the caller
    becomes known during the request (a sign-in). Raises `ValueError` for a `data` key that
    names a secret."""
    details = _jsonable(dict(data)) if data else {}
    _refuse_secrets(details)
    if context.via is not None:
        details["via"] = context.via
    user_agent = context.user_agent
    db.add(
        AuditEvent(
            created_at=utcnow(),
            kind=kind.value,
            outcome=outcome.value,
            reason=reason,
            actor_id=context.actor_id if actor_id is _UNSET else actor_id,
            target_type=target.type.value if target else None,
            target_id=target.id if target else None,
            target_user_id=target.user_id if target else None,
            ip=context.ip[:45] if context.ip else None,
            user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
            request_id=context.request_id,
            data=details or None,
        )
    )


def _refuse_secrets(value: Any, path: str = "data") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            lowered = str(key).lower()
            if any(fragment in lowered for fragment in SECRET_KEY_FRAGMENTS):
                raise ValueError(f"audit {path} may not hold {key!r}: no secrets in audit rows")
            _refuse_secrets(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_secrets(item, path)


def _jsonable(value: Any) -> Any:
    """`value` with dates, enums and sets in JSON form (the column stores JSON)."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(item) for item in value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class AuditFilters:
    actor: str | None = None  # a user id or a username
    target_type: TargetType | None = None
    target_id: str | None = None
    target_user: str | None = None  # a user id or a username
    kinds: Sequence[AuditKind] = ()
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


async def _user_id(db: AsyncSession, value: str) -> int | None:
    """A user id given as digits, else the id of the user with that username (deleted users
    keep theirs, so their history stays searchable by name)."""
    if value.isdigit():
        number = int(value)
        return number if number <= MAX_ID else None
    found = await db.scalar(select(User.id).where(User.username == value.strip().lower()))
    return int(found) if found is not None else None


class AuditService:
    async def list(
        self, *, filters: AuditFilters, params: PageParams, db: AsyncSession
    ) -> dict[str, Any]:
        """One page of events matching every filter given, newest first."""
        if filters.since and filters.until and filters.since >= filters.until:
            return build_page([], 0, params)  # an empty window: no event can match
        where: dict[str, Any] = {}
        for name, value in (("actor_id", filters.actor), ("target_user_id", filters.target_user)):
            if value is not None:
                user_id = await _user_id(db, value)
                if user_id is None:  # no such user: nothing can match
                    return build_page([], 0, params)
                where[name] = user_id
        if filters.target_type is not None:
            where["target_type"] = filters.target_type.value
        if filters.target_id is not None:
            where["target_id"] = filters.target_id
        if filters.kinds:
            where["kind__in"] = sorted({kind.value for kind in filters.kinds})
        if filters.since is not None:
            where["created_at__gte"] = filters.since
        if filters.until is not None:
            where["created_at__lt"] = filters.until
        result = await crud_audit_events.get_multi(
            db,
            offset=params.offset,
            limit=params.items_per_page,
            schema_to_select=AuditEventRead,
            sort_columns=["created_at", "id"],
            sort_orders=["desc", "desc"],
            **where,
        )
        return build_page(result["data"], result["total_count"], params)


async def prune(db: AsyncSession, *, retention_days: int, batch_size: int) -> int:
    """Delete events older than `retention_days`, `batch_size` rows per transaction (each
    batch committed: no long transaction, no lock on the whole table); returns how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    pruned = 0
    while True:
        batch = (
            select(AuditEvent.id)
            .where(AuditEvent.created_at < cutoff)
            .order_by(AuditEvent.id)
            .limit(batch_size)
        )
        result = await db.execute(delete(AuditEvent).where(AuditEvent.id.in_(batch)))
        await db.commit()
        deleted = int(getattr(result, "rowcount", 0) or 0)
        pruned += deleted
        if deleted < batch_size:
            return pruned
