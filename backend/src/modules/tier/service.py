"""Tier rules: unique names, a default tier that always exists, no deleting a tier in use."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.cache import invalidate
from src.infrastructure.config import settings
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.service import Target, record
from src.modules.common.exceptions import (
    ConflictError,
    DuplicateValueError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams, build_page
from src.modules.common.transactions import commit_or_conflict
from src.modules.tier.crud import crud_tiers
from src.modules.tier.schemas import TierCreate, TierRead, TierUpdate

TIER_EXISTS = "A tier with this name already exists"
TIERS_CACHE_TAG = "tiers"
"""Tags every cached tier read (`GET /tiers`, `GET /tiers/{name}`); tier writes drop them all."""


class TierService:
    async def get_by_name(self, *, name: str, db: AsyncSession) -> dict[str, Any]:
        tier = await crud_tiers.get(db, schema_to_select=TierRead, name=name)
        if tier is None:
            raise ResourceNotFoundError(f"Tier {name!r} not found")
        return tier

    async def list(self, *, params: PageParams, db: AsyncSession) -> dict[str, Any]:
        result = await crud_tiers.get_multi(
            db,
            offset=params.offset,
            limit=params.items_per_page,
            schema_to_select=TierRead,
            sort_columns="id",
        )
        return build_page(result["data"], result["total_count"], params)

    async def create(
        self, *, payload: TierCreate, db: AsyncSession, audit: AuditContext
    ) -> dict[str, Any]:
        if await crud_tiers.exists(db, name=payload.name):
            raise DuplicateValueError(TIER_EXISTS)
        async with commit_or_conflict(db, TIER_EXISTS):
            created = await crud_tiers.create(db, payload, commit=False, schema_to_select=TierRead)
            record(
                db,
                AuditKind.TIER_CREATED,
                audit,
                target=Target.of(TargetType.TIER, created["id"]),
                data={"name": payload.name},
            )
        await invalidate(TIERS_CACHE_TAG)
        return await self.get_by_name(name=payload.name, db=db)

    async def update(
        self, *, name: str, payload: TierUpdate, db: AsyncSession, audit: AuditContext
    ) -> dict[str, Any]:
        tier = await self.get_by_name(name=name, db=db)
        if name == settings.DEFAULT_TIER_NAME and payload.name != name:
            # New users join the tier named by DEFAULT_TIER_NAME; renaming it would split them.
            raise ConflictError("The default tier cannot be renamed; change DEFAULT_TIER_NAME")
        if payload.name != name and await crud_tiers.exists(db, name=payload.name):
            raise DuplicateValueError(TIER_EXISTS)
        async with commit_or_conflict(db, TIER_EXISTS):
            await crud_tiers.update(db, {"name": payload.name}, id=tier["id"], commit=False)
            record(
                db,
                AuditKind.TIER_UPDATED,
                audit,
                target=Target.of(TargetType.TIER, tier["id"]),
                data={"old_name": name, "name": payload.name},
            )
        await invalidate(TIERS_CACHE_TAG)
        return await self.get_by_name(name=payload.name, db=db)

    async def delete(self, *, name: str, db: AsyncSession, audit: AuditContext) -> None:
        tier = await self.get_by_name(name=name, db=db)
        if name == settings.DEFAULT_TIER_NAME:
            raise ConflictError("The default tier cannot be deleted")
        # users.tier_id is ON DELETE RESTRICT: a tier in use cannot go.
        async with commit_or_conflict(
            db, f"Tier {name!r} is still assigned to users", ConflictError
        ):
            await crud_tiers.db_delete(db, id=tier["id"], commit=False)
            record(
                db,
                AuditKind.TIER_DELETED,
                audit,
                target=Target.of(TargetType.TIER, tier["id"]),
                data={"name": name},
            )
        await invalidate(TIERS_CACHE_TAG)

    async def ensure_default(self, *, db: AsyncSession) -> int:
        """The default tier's id, creating the tier on first use (safe under concurrency)."""
        name = settings.DEFAULT_TIER_NAME
        tier = await crud_tiers.get(db, name=name)
        if tier is not None:
            return int(tier["id"])
        try:
            async with db.begin_nested():
                await crud_tiers.create(db, TierCreate(name=name), commit=False)
        except IntegrityError:
            pass  # another request created it first
        else:
            # Before the caller's commit, unlike every other write: this happens once per
            # database (`app seed` / `app serve` create the tier before serving).
            await invalidate(TIERS_CACHE_TAG)
        tier = await crud_tiers.get(db, name=name)
        if tier is None:  # pragma: no cover - only if the row vanished between the two reads
            raise ResourceNotFoundError(f"Default tier {name!r} could not be created")
        return int(tier["id"])
