"""Rate limits on the API: the N+1th request gets 429 with `Retry-After`, per tier and route;
`X-RateLimit-*` headers; keyed by user or by client IP (a spoofed X-Forwarded-For gains
nothing); before any cache; off with RATE_LIMIT_ENABLED=false.

Limits here are per day: a test never straddles a window, so the counts are exact on both
storages (the memory storage aligns windows to the clock).
"""

from __future__ import annotations

import random
import time

import pytest

from src.infrastructure.config import settings
from src.modules.auth import sessions as store
from tests.helpers.factories import create_user, login
from tests.integration.rate_limit.helpers import API, add_rule, user_on_tier

pytestmark = pytest.mark.integration

DAY = 24 * 60 * 60
ME = f"{API}/users/me"
AUTH_ME = f"{API}/auth/me"
TIERS = f"{API}/tiers"


def _random_ip() -> str:
    return ".".join(str(random.randint(1, 254)) for _ in range(4))


def _statuses(responses) -> list[int]:
    return [response.status_code for response in responses]


async def test_the_n_plus_first_anonymous_request_gets_429_with_retry_after(client, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "3/day")

    responses = [await client.get(TIERS) for _ in range(4)]

    assert _statuses(responses) == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Limit"] for r in responses] == ["3"] * 4
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    now = time.time()
    for response in responses:
        assert now < int(response.headers["X-RateLimit-Reset"]) <= now + DAY + 1
    refused = responses[-1]
    assert refused.headers["content-type"] == "application/json"
    assert isinstance(refused.json()["detail"], str)
    assert "rate limit" in refused.json()["detail"].lower()
    assert 1 <= int(refused.headers["Retry-After"]) <= DAY
    assert refused.headers["X-Request-ID"]


async def test_each_tier_gets_its_own_limit_on_a_route(client, db_session, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "50/day")
    free = await create_user(db_session)  # the default tier
    pro = await user_on_tier(db_session, "pro")
    await add_rule(db_session, settings.DEFAULT_TIER_NAME, "/api/v1/users/me", 2, DAY)
    await add_rule(db_session, "pro", "/api/v1/users/me", 4, DAY)

    await login(client, free["username"], free["password"])
    as_free = [await client.get(ME) for _ in range(3)]
    await login(client, pro["username"], pro["password"])
    as_pro = [await client.get(ME) for _ in range(5)]

    assert _statuses(as_free) == [200, 200, 429]
    assert _statuses(as_pro) == [200] * 4 + [429]
    assert as_free[0].headers["X-RateLimit-Limit"] == "2"
    assert as_pro[0].headers["X-RateLimit-Limit"] == "4"
    assert "Retry-After" in as_free[-1].headers
    assert "Retry-After" in as_pro[-1].headers


async def test_a_route_rule_is_a_budget_of_its_own(client, db_session, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "50/day")
    user = await create_user(db_session)
    await add_rule(db_session, settings.DEFAULT_TIER_NAME, "/api/v1/users/me", 1, DAY)
    await login(client, user["username"], user["password"])

    assert _statuses([await client.get(ME) for _ in range(2)]) == [200, 429]
    other = await client.get(AUTH_ME)
    assert other.status_code == 200
    assert other.headers["X-RateLimit-Limit"] == "50"


async def test_a_tier_wide_rule_covers_every_other_route_in_one_budget(
    client, db_session, monkeypatch
):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "50/day")
    user = await user_on_tier(db_session, "trial")
    await add_rule(db_session, "trial", "*", 3, DAY)
    await login(client, user["username"], user["password"])

    responses = [await client.get(path) for path in (ME, AUTH_ME, TIERS, ME)]

    assert _statuses(responses) == [200, 200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "3"


async def test_signed_in_users_are_limited_per_user_not_per_ip(client, db_session, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "2/day")
    first = await create_user(db_session)
    second = await create_user(db_session)

    await login(client, first["username"], first["password"])
    assert _statuses([await client.get(ME) for _ in range(3)]) == [200, 200, 429]
    client.cookies.clear()  # (a login carrying the first user's cookie counts against them)
    await login(client, second["username"], second["password"])  # same client IP
    assert _statuses([await client.get(ME) for _ in range(3)]) == [200, 200, 429]


async def test_a_superuser_rule_written_through_the_api_applies_at_once(
    superuser_client, monkeypatch
):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "50/day")
    rule = {"path": "/api/v1/tiers", "max_requests": 2, "period_seconds": DAY}
    created = await superuser_client.post(
        f"{TIERS}/{settings.DEFAULT_TIER_NAME}/rate-limits", json=rule
    )
    assert created.status_code == 201, created.text

    responses = [await superuser_client.get(TIERS) for _ in range(3)]

    assert _statuses(responses) == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "2"


@pytest.mark.parametrize("hops", [0, 1])
async def test_a_random_x_forwarded_for_per_request_is_still_limited(client, monkeypatch, hops):
    """With no trusted proxy the header is ignored; with one, only the entry that proxy
    appended (the real client) counts, whatever the client put before it."""
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "3/day")
    monkeypatch.setattr(settings, "TRUSTED_PROXY_HOPS", hops)
    real_client = "203.0.113.50"

    def forwarded() -> dict[str, str]:
        spoofed = ", ".join(_random_ip() for _ in range(random.randint(1, 3)))
        return {"X-Forwarded-For": f"{spoofed}, {real_client}" if hops else spoofed}

    responses = [await client.get(TIERS, headers=forwarded()) for _ in range(6)]

    assert _statuses(responses) == [200, 200, 200, 429, 429, 429]


async def test_behind_a_trusted_proxy_each_real_client_has_its_own_budget(client, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "1/day")
    monkeypatch.setattr(settings, "TRUSTED_PROXY_HOPS", 1)

    first = [await client.get(TIERS, headers={"X-Forwarded-For": "203.0.113.1"}) for _ in "ab"]
    second = await client.get(TIERS, headers={"X-Forwarded-For": "203.0.113.2"})

    assert _statuses(first) == [200, 429]
    assert second.status_code == 200


async def test_rate_limiting_runs_before_the_cache(client, db_session, monkeypatch):
    """GET /tiers/{name} is @cache'd: answers from the cache still count and are refused."""
    await create_user(db_session)  # creates the default tier
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "2/day")
    path = f"{TIERS}/{settings.DEFAULT_TIER_NAME}"
    responses = [await client.get(path) for _ in range(4)]
    assert _statuses(responses) == [200, 200, 429, 429]


async def test_health_is_not_limited(client, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "1/day")
    health = [await client.get("/health") for _ in range(3)]
    assert _statuses(health) == [200, 200, 200]
    assert "X-RateLimit-Limit" not in health[0].headers
    assert _statuses([await client.get(TIERS) for _ in range(2)]) == [200, 429]


async def test_rate_limit_enabled_false_turns_it_off(client, monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", "1/day")

    responses = [await client.get(TIERS) for _ in range(3)]

    assert _statuses(responses) == [200, 200, 200]
    assert "X-RateLimit-Limit" not in responses[0].headers


async def test_the_session_is_resolved_once_per_request(client, db_session, monkeypatch):
    """The limiter and the route's `CurrentUser` share one lookup of the session."""
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_store = store.get_session_store()
    real_resolve = session_store.resolve
    calls: list[str] = []

    async def counting_resolve(db, token):
        calls.append(token)
        return await real_resolve(db, token)

    monkeypatch.setattr(session_store, "resolve", counting_resolve)

    response = await client.get(ME)

    assert response.status_code == 200
    assert "X-RateLimit-Limit" in response.headers
    assert len(calls) == 1


async def test_an_unsafe_request_without_csrf_is_still_refused(client, plain_client, db_session):
    """The limiter looks up the caller without the CSRF check; the route still makes it."""
    user = await create_user(db_session)
    await login(plain_client, user["username"], user["password"])

    response = await plain_client.patch(f"{API}/users/{user['username']}", json={"name": "X"})

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
