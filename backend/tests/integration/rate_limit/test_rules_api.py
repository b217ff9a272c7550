"""`/api/v1/tiers/{name}/rate-limits`: superuser CRUD of a tier's rules, and who may call it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from src.infrastructure.config import settings
from src.modules.rate_limit.models import RateLimit
from tests.helpers.factories import create_user, login
from tests.integration.rate_limit.helpers import API, tier_id

pytestmark = pytest.mark.integration

RULES = f"{API}/tiers/{{tier}}/rate-limits"
PROFILE = "/api/v1/users/{username}"


def rules(tier: str | None = None) -> str:
    return RULES.format(tier=tier or settings.DEFAULT_TIER_NAME)


async def test_superuser_creates_reads_lists_updates_and_deletes_a_rule(superuser_client):
    body = {"path": PROFILE, "max_requests": 30, "period_seconds": 60}

    created = await superuser_client.post(rules(), json=body)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert {k: rule[k] for k in body} == body
    assert rule["id"]
    assert rule["tier_id"]
    assert rule["created_at"]
    one = f"{rules()}/{rule['id']}"

    assert (await superuser_client.get(one)).json() == rule
    listed = (await superuser_client.get(rules())).json()
    assert listed["data"] == [rule]
    assert (listed["total_count"], listed["has_more"], listed["page"]) == (1, False, 1)

    changed = await superuser_client.patch(f"{one}/", json={"max_requests": 5})
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_requests"] == 5
    assert changed.json()["period_seconds"] == 60
    assert changed.json()["updated_at"]

    moved = await superuser_client.patch(one, json={"path": "*", "period_seconds": 3600})
    assert (moved.json()["path"], moved.json()["period_seconds"]) == ("*", 3600)

    assert (await superuser_client.delete(one)).status_code == 204
    assert (await superuser_client.get(one)).status_code == 404
    assert (await superuser_client.get(rules())).json()["data"] == []


async def test_the_path_is_normalised_and_must_name_an_api_route(superuser_client):
    slash = await superuser_client.post(
        rules(), json={"path": "/api/v1/users/me/", "max_requests": 1, "period_seconds": 1}
    )
    assert slash.status_code == 201
    assert slash.json()["path"] == "/api/v1/users/me"

    for path in ("/api/v1/nowhere", "/api/v1/users/alice", "/health", "api/v1/users"):
        response = await superuser_client.post(
            rules(), json={"path": path, "max_requests": 1, "period_seconds": 1}
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"][-1] == "path"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "*", "max_requests": 0, "period_seconds": 60}, "max_requests"),
        ({"path": "*", "max_requests": 1, "period_seconds": -1}, "period_seconds"),
        ({"path": "*", "max_requests": "many", "period_seconds": 60}, "max_requests"),
        ({"path": "*", "max_requests": 1}, "period_seconds"),
        ({"path": "*", "max_requests": 1, "period_seconds": 1, "tier_id": 9}, "tier_id"),
    ],
)
async def test_invalid_rules_are_422_naming_the_field(superuser_client, body, field):
    response = await superuser_client.post(rules(), json=body)
    assert response.status_code == 422
    assert any(error["loc"][-1] == field for error in response.json()["detail"])


async def test_a_tier_has_one_rule_per_path(superuser_client):
    body = {"path": "*", "max_requests": 10, "period_seconds": 60}
    assert (await superuser_client.post(rules(), json=body)).status_code == 201
    again = await superuser_client.post(rules(), json=body)
    assert again.status_code == 409
    assert isinstance(again.json()["detail"], str)

    other = await superuser_client.post(
        rules(), json={"path": PROFILE, "max_requests": 1, "period_seconds": 1}
    )
    clash = await superuser_client.patch(f"{rules()}/{other.json()['id']}", json={"path": "*"})
    assert clash.status_code == 409


async def test_the_same_path_may_have_a_rule_in_each_tier(superuser_client):
    assert (await superuser_client.post(f"{API}/tiers", json={"name": "pro"})).status_code == 201
    body = {"path": PROFILE, "max_requests": 10, "period_seconds": 60}
    assert (await superuser_client.post(rules(), json=body)).status_code == 201
    assert (await superuser_client.post(rules("pro"), json=body)).status_code == 201


async def test_unknown_tiers_and_other_tiers_rules_are_404(superuser_client):
    body = {"path": "*", "max_requests": 10, "period_seconds": 60}
    assert (await superuser_client.post(rules("nope"), json=body)).status_code == 404
    assert (await superuser_client.get(rules("nope"))).status_code == 404
    await superuser_client.post(f"{API}/tiers", json={"name": "pro"})
    rule = (await superuser_client.post(rules(), json=body)).json()
    for method in ("GET", "DELETE"):
        response = await superuser_client.request(method, f"{rules('pro')}/{rule['id']}")
        assert response.status_code == 404
    wrong_tier = await superuser_client.patch(f"{rules('pro')}/{rule['id']}", json={"path": "*"})
    assert wrong_tier.status_code == 404
    assert (await superuser_client.get(f"{rules()}/999999")).status_code == 404


async def test_update_needs_something_to_change_and_no_nulls(superuser_client):
    rule = (
        await superuser_client.post(
            rules(), json={"path": "*", "max_requests": 10, "period_seconds": 60}
        )
    ).json()
    one = f"{rules()}/{rule['id']}"
    assert (await superuser_client.patch(one, json={})).status_code == 422
    nulled = await superuser_client.patch(one, json={"max_requests": None})
    assert nulled.status_code == 422
    assert nulled.json()["detail"][0]["loc"][-1] == "max_requests"


async def test_deleting_a_tier_deletes_its_rules(superuser_client, db_session):
    await superuser_client.post(f"{API}/tiers", json={"name": "gone"})
    created = await superuser_client.post(
        rules("gone"), json={"path": "*", "max_requests": 1, "period_seconds": 1}
    )
    assert created.status_code == 201

    assert (await superuser_client.delete(f"{API}/tiers/gone")).status_code == 204

    remaining = await db_session.execute(
        select(RateLimit).where(RateLimit.id == created.json()["id"])
    )
    assert remaining.first() is None


# --- authorization ---------------------------------------------------------------------------

CALLS = [
    ("GET", "", None),
    ("POST", "", {"path": "*", "max_requests": 1, "period_seconds": 60}),
    ("GET", "/1", None),
    ("PATCH", "/1", {"max_requests": 2}),
    ("DELETE", "/1", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS)
@pytest.mark.parametrize("slash", ["", "/"])
async def test_anonymous_callers_get_401(client, db_session, method, suffix, body, slash):
    await tier_id(db_session, settings.DEFAULT_TIER_NAME)
    response = await client.request(method, f"{rules()}{suffix}{slash}", json=body)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS)
@pytest.mark.parametrize("slash", ["", "/"])
async def test_regular_users_get_403(client, db_session, method, suffix, body, slash):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    response = await client.request(method, f"{rules()}{suffix}{slash}", json=body)
    assert response.status_code == 403
    assert (await db_session.execute(select(RateLimit))).first() is None
