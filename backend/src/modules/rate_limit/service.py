"""Rate-limit rules: which limit applies to a caller on a route, and managing the rules.

Precedence for a signed-in user on route `P` (the route template, e.g.
`/api/v1/users/{username}`): the user's tier's rule for `P` (a budget of its own for that
route), else the tier's `*` rule, else `RATE_LIMIT_DEFAULT`; the last two are one budget
shared by every route without a rule of its own. Anonymous callers get `RATE_LIMIT_ANONYMOUS`,
keyed by client IP.

The rules table is read on the hot path of every signed-in request, so each process keeps a
snapshot of it (`rate_limit_rules`) for `RULES_CACHE_TTL_SECONDS`. Writes through this service
refresh the snapshot of the process that made them at once; other workers and hosts see a
change within the TTL. The trade-off: one small query per process every few seconds instead
of one per request, for a short delay before a new rule reaches every process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from limits import RateLimitItem
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.config import settings
from src.infrastructure.ratelimit import limit_per_period, parse_limit
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.service import Target, record
from src.modules.common.exceptions import (
    DuplicateValueError,
    RateLimitedError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams, build_page
from src.modules.common.transactions import commit_or_conflict
from src.modules.rate_limit.crud import crud_rate_limits
from src.modules.rate_limit.models import RateLimit
from src.modules.rate_limit.schemas import (
    ALL_ROUTES,
    RateLimitCreate,
    RateLimitCreateInternal,
    RateLimitRead,
    RateLimitUpdate,
)
from src.modules.tier.service import TierService

RULES_CACHE_TTL_SECONDS = 10.0
RULE_EXISTS = "This tier already has a rule for this path"

Rules = Mapping[int, Mapping[str, RateLimitItem]]  # tier id -> path -> limit


class RateLimitExceededError(RateLimitedError):
    """429 with `Retry-After` and the `X-RateLimit-*` headers of the exhausted limit."""

    def __init__(self, *, retry_after: int, headers: Mapping[str, str]) -> None:
        super().__init__(
            f"Rate limit exceeded: try again in {retry_after} seconds", retry_after=retry_after
        )
        self.headers = dict(headers)


def select_limit(
    rules: Rules, *, tier_id: int | None, path: str, default: RateLimitItem
) -> tuple[RateLimitItem, str]:
    """The limit for a member of `tier_id` on route `path`, and the budget it counts against
    (`path` for a route rule, `*` for the tier-wide rule and the default)."""
    tier_rules = rules.get(tier_id) if tier_id is not None else None
    if tier_rules:
        item = tier_rules.get(path)
        if item is not None:
            return item, path
        item = tier_rules.get(ALL_ROUTES)
        if item is not None:
            return item, ALL_ROUTES
    return default, ALL_ROUTES


def default_limit(*, authenticated: bool) -> RateLimitItem:
    return parse_limit(
        settings.RATE_LIMIT_DEFAULT if authenticated else settings.RATE_LIMIT_ANONYMOUS
    )


class RuleCache:
    """A per-process snapshot of the `rate_limits` table, refreshed every `ttl` seconds.

    While one request refreshes an expired snapshot, concurrent requests keep using the old
    one (no stampede of identical queries); a refresh that raced with `invalidate()` is
    discarded, so a write is never undone by a slower read.
    """

    def __init__(self, ttl: float = RULES_CACHE_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._rules: Rules | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._refreshing = False

    async def get(self, db: AsyncSession) -> Rules:
        rules = self._rules
        if rules is not None and (
            self._refreshing or time.monotonic() - self._loaded_at < self.ttl
        ):
            return rules
        generation = self._generation
        self._refreshing = True
        try:
            loaded = await self._load(db)
        finally:
            self._refreshing = False
        if generation == self._generation:
            self._rules, self._loaded_at = loaded, time.monotonic()
        return loaded

    def invalidate(self) -> None:
        """Forget the snapshot: the next request reads the table again."""
        self._generation += 1
        self._rules = None

    @staticmethod
    async def _load(db: AsyncSession) -> Rules:
        rows = await db.execute(
            select(
                RateLimit.tier_id,
                RateLimit.path,
                RateLimit.max_requests,
                RateLimit.period_seconds,
            )
        )
        rules: dict[int, dict[str, RateLimitItem]] = {}
        for tier_id, path, max_requests, period_seconds in rows:
            rules.setdefault(tier_id, {})[path] = limit_per_period(max_requests, period_seconds)
        return rules


rate_limit_rules = RuleCache()


def _record(
    db: AsyncSession,
    kind: AuditKind,
    audit: AuditContext,
    rule_id: int,
    tier_name: str,
    rule: Mapping[str, Any],
) -> None:
    """Audit a rule change: the rule as it is after it (as it was, for a deletion)."""
    fields = ("path", "max_requests", "period_seconds")
    record(
        db,
        kind,
        audit,
        target=Target.of(TargetType.RATE_LIMIT, rule_id),
        data={"tier": tier_name} | {name: rule[name] for name in fields if name in rule},
    )


class RateLimitService:
    """Superuser management of a tier's rules. Every write refreshes this process's snapshot."""

    async def list(self, *, tier_name: str, params: PageParams, db: AsyncSession) -> dict[str, Any]:
        tier = await TierService().get_by_name(name=tier_name, db=db)
        result = await crud_rate_limits.get_multi(
            db,
            offset=params.offset,
            limit=params.items_per_page,
            schema_to_select=RateLimitRead,
            sort_columns="id",
            tier_id=tier["id"],
        )
        return build_page(result["data"], result["total_count"], params)

    async def get(self, *, tier_name: str, rule_id: int, db: AsyncSession) -> dict[str, Any]:
        tier = await TierService().get_by_name(name=tier_name, db=db)
        return await self._get(tier_id=tier["id"], rule_id=rule_id, db=db)

    async def create(
        self, *, tier_name: str, payload: RateLimitCreate, db: AsyncSession, audit: AuditContext
    ) -> dict[str, Any]:
        """Add a rule; 404 for an unknown tier, 409 when the tier has a rule for the path."""
        tier = await TierService().get_by_name(name=tier_name, db=db)
        if await crud_rate_limits.exists(db, tier_id=tier["id"], path=payload.path):
            raise DuplicateValueError(RULE_EXISTS)
        row = RateLimitCreateInternal(tier_id=tier["id"], **payload.model_dump())
        async with commit_or_conflict(db, RULE_EXISTS):
            created = await crud_rate_limits.create(
                db, row, commit=False, schema_to_select=RateLimitRead
            )
            _record(db, AuditKind.RATE_LIMIT_CREATED, audit, created["id"], tier_name, created)
        rate_limit_rules.invalidate()
        return created

    async def update(
        self,
        *,
        tier_name: str,
        rule_id: int,
        payload: RateLimitUpdate,
        db: AsyncSession,
        audit: AuditContext,
    ) -> dict[str, Any]:
        """Change a rule's path or limit; 409 when the new path has a rule already."""
        changes = payload.model_dump(exclude_unset=True)
        tier = await TierService().get_by_name(name=tier_name, db=db)
        rule = await self._get(tier_id=tier["id"], rule_id=rule_id, db=db)
        if changes.get("path", rule["path"]) != rule["path"] and await crud_rate_limits.exists(
            db, tier_id=tier["id"], path=changes["path"]
        ):
            raise DuplicateValueError(RULE_EXISTS)
        async with commit_or_conflict(db, RULE_EXISTS):
            await crud_rate_limits.update(db, changes, id=rule_id, commit=False)
            _record(db, AuditKind.RATE_LIMIT_UPDATED, audit, rule_id, tier_name, rule | changes)
        rate_limit_rules.invalidate()
        return await self._get(tier_id=tier["id"], rule_id=rule_id, db=db)

    async def delete(
        self, *, tier_name: str, rule_id: int, db: AsyncSession, audit: AuditContext
    ) -> None:
        tier = await TierService().get_by_name(name=tier_name, db=db)
        rule = await self._get(tier_id=tier["id"], rule_id=rule_id, db=db)
        await crud_rate_limits.db_delete(db, id=rule_id, commit=False)
        _record(db, AuditKind.RATE_LIMIT_DELETED, audit, rule_id, tier_name, rule)
        await db.commit()
        rate_limit_rules.invalidate()

    @staticmethod
    async def _get(*, tier_id: int, rule_id: int, db: AsyncSession) -> dict[str, Any]:
        rule = await crud_rate_limits.get(
            db, schema_to_select=RateLimitRead, id=rule_id, tier_id=tier_id
        )
        if rule is None:
            raise ResourceNotFoundError("Rate-limit rule not found")
        return rule
