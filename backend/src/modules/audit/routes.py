"""`/api/v1/audit-events`: the security audit log, read-only, for holders of `audit.read`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from src.infrastructure.database.session import DBSession
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.permissions import AUDIT_READ
from src.modules.audit.schemas import AuditEventRead
from src.modules.audit.service import AuditFilters, AuditService
from src.modules.auth.dependencies import require_permissions
from src.modules.auth.sessions import Principal
from src.modules.common.schemas import IsoDateTime, Page, Pagination

router = APIRouter(prefix="/audit-events", tags=["audit"])
AuditReader = Annotated[Principal, require_permissions(AUDIT_READ)]

UserRef = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=30,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="A user id or a username",
    ),
]


@router.get("", response_model=Page[AuditEventRead])
async def list_audit_events(
    _: AuditReader,
    pagination: Pagination,
    db: DBSession,
    actor: UserRef = None,
    target_user: UserRef = None,
    target_type: Annotated[TargetType | None, Query(description="What was acted on")] = None,
    target_id: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Its id (with target_type)")
    ] = None,
    kind: Annotated[
        list[AuditKind] | None, Query(description="One or several kinds (repeat the parameter)")
    ] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="From this time (inclusive, with an offset)")
    ] = None,
    until: Annotated[
        IsoDateTime | None, Query(description="Before this time (exclusive, with an offset)")
    ] = None,
) -> dict[str, Any]:
    """Security events, newest first, paginated (`audit.read`). Every filter given must
    match: `actor` (who did it) and `target_user` (whose account it concerned) take a user id
    or a username; `target_type` and `target_id` name the object; `kind` may repeat; `since`
    and `until` bound the time (ISO 8601 with an offset; an empty window matches nothing)."""
    filters = AuditFilters(
        actor=actor,
        target_type=target_type,
        target_id=target_id,
        target_user=target_user,
        kinds=tuple(kind or ()),
        since=since,
        until=until,
    )
    return await AuditService().list(filters=filters, params=pagination, db=db)
