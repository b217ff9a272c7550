"""Shared helpers for the rate-limit tests: tiers with users on them, rules in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from src.modules.audit.context import SYSTEM
from src.modules.common.exceptions import ResourceNotFoundError
from src.modules.rate_limit.models import RateLimit
from src.modules.rate_limit.service import rate_limit_rules
from src.modules.tier.schemas import TierCreate
from src.modules.tier.service import TierService
from src.modules.user.schemas import UserTierUpdate
from src.modules.user.service import UserService
from tests.helpers.factories import create_user

API = "/api/v1"


async def tier_id(db: AsyncSession, name: str) -> int:
    """The id of tier `name`, creating it when needed."""
    service = TierService()
    try:
        return int((await service.get_by_name(name=name, db=db))["id"])
    except ResourceNotFoundError:
        return int((await service.create(payload=TierCreate(name=name), db=db, audit=SYSTEM))["id"])


async def user_on_tier(db: AsyncSession, tier: str) -> dict[str, Any]:
    user = await create_user(db)
    await tier_id(db, tier)
    await UserService().assign_tier(
        username=user["username"], payload=UserTierUpdate(tier_name=tier), db=db
    )
    return user


async def add_rule(db: AsyncSession, tier: str, path: str, max_requests: int, period: int) -> None:
    """Write a rule straight to the database (as another process would) and drop this
    process's snapshot of the rules, as a write through the API does."""
    db.add(
        RateLimit(
            tier_id=await tier_id(db, tier),
            path=path,
            max_requests=max_requests,
            period_seconds=period,
        )
    )
    await db.commit()
    rate_limit_rules.invalidate()
