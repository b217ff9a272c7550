"""`/api/v1/tiers/{name}/rate-limits`: a tier's rate-limit rules, for holders of
`ratelimit.manage`.

A rule's `path` is a route template exactly as the API declares it (see `/openapi.json`), such
as `/api/v1/users/{username}`, or `*` for every route of the tier without a rule of its own;
an unknown path is a 422, so a typo never leaves a rule that silently matches nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError

from src.infrastructure.database.session import DBSession
from src.infrastructure.ratelimit import all_route_templates
from src.modules.audit.dependencies import Audit
from src.modules.auth.dependencies import require_permissions
from src.modules.auth.sessions import Principal
from src.modules.common.schemas import Page, Pagination, PathId, responses
from src.modules.rate_limit.permissions import RATELIMIT_MANAGE
from src.modules.rate_limit.schemas import (
    ALL_ROUTES,
    RateLimitCreate,
    RateLimitRead,
    RateLimitUpdate,
)
from src.modules.rate_limit.service import RateLimitService

router = APIRouter(prefix="/tiers/{name}/rate-limits", tags=["rate limits"])
RuleManager = Annotated[Principal, require_permissions(RATELIMIT_MANAGE)]


def _require_known_path(request: Request, path: str | None) -> None:
    if path is None or path == ALL_ROUTES:
        return
    known = {t for t in all_route_templates(request.app) if t.startswith("/api/")}
    if path not in known:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "path"),
                    "msg": f"no API route is declared as {path!r} (or use {ALL_ROUTES!r})",
                    "type": "value_error",
                }
            ]
        )


@router.get("", response_model=Page[RateLimitRead])
async def list_rate_limits(
    name: str, _: RuleManager, pagination: Pagination, db: DBSession
) -> dict[str, Any]:
    """The tier's rules, paginated."""
    return await RateLimitService().list(tier_name=name, params=pagination, db=db)


@router.post(
    "",
    response_model=RateLimitRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(409, e409="The tier has a rule for this path"),
)
async def create_rate_limit(
    name: str,
    payload: RateLimitCreate,
    request: Request,
    _: RuleManager,
    db: DBSession,
    audit: Audit,
) -> dict[str, Any]:
    """Add a rule to the tier. 404 for an unknown tier; 409 when the tier has a rule for the
    path; 422 when the path is no API route."""
    _require_known_path(request, payload.path)
    return await RateLimitService().create(tier_name=name, payload=payload, db=db, audit=audit)


@router.get("/{rule_id}", response_model=RateLimitRead)
async def read_rate_limit(
    name: str, rule_id: PathId, _: RuleManager, db: DBSession
) -> dict[str, Any]:
    """One rule of the tier."""
    return await RateLimitService().get(tier_name=name, rule_id=rule_id, db=db)


@router.patch(
    "/{rule_id}",
    response_model=RateLimitRead,
    responses=responses(409, e409="The tier has a rule for this path"),
)
async def update_rate_limit(
    name: str,
    rule_id: PathId,
    payload: RateLimitUpdate,
    request: Request,
    _: RuleManager,
    db: DBSession,
    audit: Audit,
) -> dict[str, Any]:
    """Change a rule's path, `max_requests` or `period_seconds`."""
    _require_known_path(request, payload.path)
    return await RateLimitService().update(
        tier_name=name, rule_id=rule_id, payload=payload, db=db, audit=audit
    )


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rate_limit(
    name: str, rule_id: PathId, _: RuleManager, db: DBSession, audit: Audit
) -> None:
    """Remove a rule: the tier's `*` rule or the default applies again."""
    await RateLimitService().delete(tier_name=name, rule_id=rule_id, db=db, audit=audit)
