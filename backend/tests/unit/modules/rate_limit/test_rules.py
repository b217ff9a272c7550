"""Which limit applies to whom: rule selection, the rules snapshot, schemas and the service."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

import pytest
from limits import RateLimitItemPerHour, RateLimitItemPerMinute
from pydantic import ValidationError

from src.infrastructure.config import settings
from src.infrastructure.ratelimit import RATE_LIMIT_HEADERS_KEY
from src.modules.audit.context import SYSTEM
from src.modules.common.exceptions import DuplicateValueError, ResourceNotFoundError
from src.modules.rate_limit import dependencies
from src.modules.rate_limit.schemas import RateLimitCreate, RateLimitUpdate
from src.modules.rate_limit.service import (
    RateLimitExceededError,
    RateLimitService,
    RuleCache,
    default_limit,
    select_limit,
)
from tests.helpers.factories import make_principal

DEFAULT = RateLimitItemPerMinute(120)
ROUTE = "/api/v1/users/{username}"
PRO_ROUTE = RateLimitItemPerMinute(500)
PRO_ALL = RateLimitItemPerHour(10_000)
RULES = {2: {ROUTE: PRO_ROUTE, "*": PRO_ALL}, 3: {ROUTE: RateLimitItemPerMinute(5)}}


@pytest.mark.unit
def test_a_route_rule_of_the_tier_wins_and_is_a_budget_of_its_own():
    assert select_limit(RULES, tier_id=2, path=ROUTE, default=DEFAULT) == (PRO_ROUTE, ROUTE)


@pytest.mark.unit
def test_the_tier_wide_rule_covers_the_other_routes_in_one_budget():
    assert select_limit(RULES, tier_id=2, path="/api/v1/tiers", default=DEFAULT) == (PRO_ALL, "*")


@pytest.mark.unit
def test_without_a_matching_rule_the_default_applies():
    assert select_limit(RULES, tier_id=3, path="/api/v1/tiers", default=DEFAULT) == (DEFAULT, "*")
    assert select_limit(RULES, tier_id=1, path=ROUTE, default=DEFAULT) == (DEFAULT, "*")
    assert select_limit(RULES, tier_id=None, path=ROUTE, default=DEFAULT) == (DEFAULT, "*")
    assert select_limit({}, tier_id=2, path=ROUTE, default=DEFAULT) == (DEFAULT, "*")


@pytest.mark.unit
def test_rules_match_route_templates_not_concrete_paths():
    assert select_limit(RULES, tier_id=2, path="/api/v1/users/alice", default=DEFAULT)[0] is PRO_ALL


@pytest.mark.unit
def test_default_limits_come_from_settings(monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "7/minute")
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "3/hour")
    assert default_limit(authenticated=True).amount == 7
    anonymous = default_limit(authenticated=False)
    assert (anonymous.amount, anonymous.get_expiry()) == (3, 3600)


@pytest.mark.unit
def test_rate_limit_exceeded_carries_retry_after_and_headers():
    error = RateLimitExceededError(retry_after=12, headers={"X-RateLimit-Limit": "5"})
    assert error.status_code == 429
    assert error.retry_after == 12
    assert error.headers == {"X-RateLimit-Limit": "5"}
    assert "12 seconds" in error.detail


# --- the per-process snapshot of the rules table ---------------------------------------------


def _db(*batches: list[tuple[int, str, int, int]]) -> AsyncMock:
    db = AsyncMock()
    db.execute = AsyncMock(side_effect=list(batches))
    return db


@pytest.mark.unit
async def test_the_snapshot_is_read_once_per_ttl():
    cache = RuleCache(ttl=60)
    db = _db([(2, ROUTE, 5, 60)])
    first = await cache.get(db)
    second = await cache.get(db)
    assert first is second
    assert db.execute.await_count == 1
    item = first[2][ROUTE]
    assert (item.amount, item.get_expiry()) == (5, 60)


@pytest.mark.unit
async def test_invalidate_makes_the_next_request_read_the_table():
    cache = RuleCache(ttl=60)
    db = _db([(2, ROUTE, 5, 60)], [])
    await cache.get(db)
    cache.invalidate()
    assert await cache.get(db) == {}
    assert db.execute.await_count == 2


@pytest.mark.unit
async def test_an_expired_snapshot_is_refreshed():
    cache = RuleCache(ttl=0)
    db = _db([(2, ROUTE, 5, 60)], [(2, ROUTE, 9, 60)])
    await cache.get(db)
    assert (await cache.get(db))[2][ROUTE].amount == 9


@pytest.mark.unit
async def test_a_read_that_raced_with_a_write_is_not_kept():
    cache = RuleCache(ttl=60)
    db = AsyncMock()

    async def slow_read(*_args, **_kwargs):
        cache.invalidate()  # a rule was written while this read was in flight
        return [(2, ROUTE, 5, 60)]

    db.execute = slow_read
    await cache.get(db)
    assert cache._rules is None


@pytest.mark.unit
async def test_while_one_request_refreshes_the_others_use_the_old_snapshot():
    cache = RuleCache(ttl=0)
    db = _db([(2, ROUTE, 5, 60)])
    old = await cache.get(db)
    cache._refreshing = True
    assert await cache.get(db) is old
    assert db.execute.await_count == 1


# --- schemas ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_paths_lose_the_trailing_slash_and_must_be_templates_or_star():
    rule = RateLimitCreate(path=" /api/v1/users/ ", max_requests=5, period_seconds=60)
    assert rule.path == "/api/v1/users"
    assert RateLimitCreate(path="*", max_requests=5, period_seconds=60).path == "*"
    with pytest.raises(ValidationError, match="path"):
        RateLimitCreate(path="api/v1/users", max_requests=5, period_seconds=60)


@pytest.mark.unit
@pytest.mark.parametrize(
    "body",
    [
        {"path": "*", "max_requests": 0, "period_seconds": 60},
        {"path": "*", "max_requests": 5, "period_seconds": 0},
        {"path": "*", "max_requests": 5, "period_seconds": 60 * 24 * 3600},
        {"path": "*", "max_requests": 5},
        {"path": "*", "max_requests": 5, "period_seconds": 60, "tier_id": 1},
    ],
)
def test_create_refuses_bad_values(body):
    with pytest.raises(ValidationError):
        RateLimitCreate.model_validate(body)


@pytest.mark.unit
def test_update_needs_a_change_and_refuses_nulls():
    assert RateLimitUpdate(max_requests=3).model_dump(exclude_unset=True) == {"max_requests": 3}
    with pytest.raises(ValidationError, match="at least one"):
        RateLimitUpdate()
    with pytest.raises(ValidationError) as error:
        RateLimitUpdate.model_validate({"period_seconds": None})
    assert error.value.errors()[0]["loc"] == ("period_seconds",)


# --- the service, CRUD layer mocked ----------------------------------------------------------

TIER = {"id": 2, "name": "pro", "created_at": None}


@pytest.fixture
def tiers(mocker):
    mock = mocker.patch("src.modules.tier.service.crud_tiers")
    mock.get = AsyncMock(return_value=TIER)
    return mock


@pytest.mark.unit
async def test_create_refuses_a_second_rule_for_the_same_path(mocker, tiers):
    crud = mocker.patch("src.modules.rate_limit.service.crud_rate_limits")
    crud.exists = AsyncMock(return_value=True)
    payload = RateLimitCreate(path=ROUTE, max_requests=5, period_seconds=60)
    with pytest.raises(DuplicateValueError):
        await RateLimitService().create(
            tier_name="pro", payload=payload, db=AsyncMock(), audit=SYSTEM
        )
    crud.create.assert_not_called()


@pytest.mark.unit
async def test_create_writes_the_rule_for_the_tier_and_refreshes_the_snapshot(mocker, tiers):
    crud = mocker.patch("src.modules.rate_limit.service.crud_rate_limits")
    crud.exists = AsyncMock(return_value=False)
    crud.create = AsyncMock(return_value={"id": 9, "tier_id": 2, "path": ROUTE})
    cache = mocker.patch("src.modules.rate_limit.service.rate_limit_rules")
    payload = RateLimitCreate(path=ROUTE, max_requests=5, period_seconds=60)

    db = AsyncMock()
    db.add = MagicMock()

    created = await RateLimitService().create(tier_name="pro", payload=payload, db=db, audit=SYSTEM)

    assert created["id"] == 9
    (event,) = db.add.call_args.args  # the audit row, in the rule's transaction
    assert (event.kind, event.target_type, event.target_id) == (
        "rate_limit.created",
        "rate_limit",
        "9",
    )
    assert event.data["tier"] == "pro"
    row = crud.create.await_args.args[1]
    assert (row.tier_id, row.path, row.max_requests, row.period_seconds) == (2, ROUTE, 5, 60)
    cache.invalidate.assert_called_once()


@pytest.mark.unit
async def test_a_rule_of_another_tier_is_not_found(mocker, tiers):
    crud = mocker.patch("src.modules.rate_limit.service.crud_rate_limits")
    crud.get = AsyncMock(return_value=None)
    with pytest.raises(ResourceNotFoundError):
        await RateLimitService().delete(tier_name="pro", rule_id=1, db=AsyncMock(), audit=SYSTEM)
    assert crud.get.await_args.kwargs["tier_id"] == 2
    crud.db_delete.assert_not_called()


@pytest.mark.unit
async def test_unknown_tier_is_404(mocker):
    mocker.patch("src.modules.tier.service.crud_tiers").get = AsyncMock(return_value=None)
    with pytest.raises(ResourceNotFoundError):
        await RateLimitService().get(tier_name="nope", rule_id=1, db=AsyncMock())


@pytest.mark.unit
async def test_update_to_a_path_the_tier_has_a_rule_for_is_409(mocker, tiers):
    crud = mocker.patch("src.modules.rate_limit.service.crud_rate_limits")
    crud.get = AsyncMock(return_value={"id": 1, "tier_id": 2, "path": "*"})
    crud.exists = AsyncMock(return_value=True)
    with pytest.raises(DuplicateValueError):
        await RateLimitService().update(
            tier_name="pro",
            rule_id=1,
            payload=RateLimitUpdate(path=ROUTE),
            db=AsyncMock(),
            audit=SYSTEM,
        )
    crud.update.assert_not_called()


# --- who is the caller: the key a request counts against -------------------------------------


def _request(peer: str = "198.51.100.4", headers=None):
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/users/alice",
        "raw_path": b"/api/v1/users/alice",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": (peer, 1234),
        "server": ("test", 80),
        "scheme": "http",
    }
    from starlette.requests import Request

    return Request(scope)


@pytest.fixture
def hits(mocker):
    """The limiter's `hit` calls: (limit, budget, caller)."""
    calls: list[tuple[object, ...]] = []

    async def hit(item, *identifiers):
        calls.append((item, *identifiers))
        from src.infrastructure.ratelimit import LimitStatus

        return LimitStatus(True, item.amount, item.amount - 1, 0.0)

    mocker.patch.object(dependencies, "get_rate_limiter").return_value.hit = hit
    mocker.patch.object(dependencies, "route_template", return_value=ROUTE)
    return calls


@pytest.mark.unit
async def test_anonymous_callers_are_keyed_by_client_ip(mocker, monkeypatch, hits):
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "3/hour")
    monkeypatch.setattr(settings, "TRUSTED_PROXY_HOPS", 1)
    mocker.patch.object(dependencies, "resolve_session", AsyncMock(return_value=None))
    request = _request(headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})

    await dependencies.enforce_rate_limit(request, db=AsyncMock())

    (item, budget, caller), *_ = hits
    assert (item.amount, budget, caller) == (3, "*", "ip:203.0.113.9")
    # Left in the scope for the edge middleware, which adds them to whatever response follows.
    headers = dict(request.scope[RATE_LIMIT_HEADERS_KEY])
    assert headers[b"x-ratelimit-limit"] == b"3"
    assert headers[b"x-ratelimit-remaining"] == b"2"


@pytest.mark.unit
async def test_signed_in_callers_are_keyed_by_user_and_their_tier_rules(mocker, hits):
    context = SimpleNamespace(principal=make_principal(id=41, tier_id=3))
    mocker.patch.object(dependencies, "resolve_session", AsyncMock(return_value=context))
    mocker.patch.object(dependencies.rate_limit_rules, "get", AsyncMock(return_value=RULES))
    await dependencies.enforce_rate_limit(_request(), db=AsyncMock())

    (item, budget, caller), *_ = hits
    assert (item.amount, budget, caller) == (5, ROUTE, "user:41")


@pytest.mark.unit
async def test_nothing_is_counted_when_disabled(mocker, monkeypatch, hits):
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    resolve = mocker.patch.object(dependencies, "resolve_session", AsyncMock())
    await dependencies.enforce_rate_limit(_request(), AsyncMock())
    assert hits == []
    resolve.assert_not_called()


@pytest.mark.unit
@pytest.mark.parametrize("name", ["RATE_LIMIT_DEFAULT", "RATE_LIMIT_ANONYMOUS"])
def test_a_malformed_default_refuses_to_start(monkeypatch, name):
    monkeypatch.setattr(settings, name, "lots per minute")
    with pytest.raises(ValueError, match=name):
        dependencies._refuse_malformed_defaults()
