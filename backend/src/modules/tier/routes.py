"""`/api/v1/tiers`: anyone may read tiers (the public price list); managing them needs
`tier.manage`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status

from src.infrastructure.cache import cache
from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.dependencies import require_permissions
from src.modules.auth.sessions import Principal
from src.modules.common.schemas import Page, Pagination, responses
from src.modules.tier.permissions import TIER_MANAGE
from src.modules.tier.schemas import TierCreate, TierRead, TierUpdate
from src.modules.tier.service import TIERS_CACHE_TAG, TierService

router = APIRouter(prefix="/tiers", tags=["tiers"])
TierManager = Annotated[Principal, require_permissions(TIER_MANAGE)]


@router.get("", response_model=Page[TierRead])
@cache("tiers:{pagination.page}:{pagination.items_per_page}", tags=[TIERS_CACHE_TAG])
async def list_tiers(pagination: Pagination, db: DBSession) -> dict[str, Any]:
    """All tiers, paginated."""
    return await TierService().list(params=pagination, db=db)


@router.get("/{name}", response_model=TierRead)
@cache("tier:{name}", tags=[TIERS_CACHE_TAG])
async def read_tier(name: str, db: DBSession) -> dict[str, Any]:
    """One tier by name."""
    return await TierService().get_by_name(name=name, db=db)


@router.post(
    "",
    response_model=TierRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(409, e409="A tier has this name"),
)
async def create_tier(
    payload: TierCreate, _: TierManager, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Create a tier (`tier.manage`). 409 when the name exists."""
    return await TierService().create(payload=payload, db=db, audit=audit)


@router.patch(
    "/{name}",
    response_model=TierRead,
    responses=responses(409, e409="A tier has this name, or this is the default tier"),
)
async def update_tier(
    name: str, payload: TierUpdate, _: TierManager, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Rename a tier (`tier.manage`)."""
    return await TierService().update(name=name, payload=payload, db=db, audit=audit)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(409, e409="The default tier, or a tier users are on"),
)
async def delete_tier(name: str, _: TierManager, db: DBSession, audit: Audit) -> None:
    """Delete a tier no user is on (`tier.manage`); the default tier stays."""
    await TierService().delete(name=name, db=db, audit=audit)
