"""The routes that were superuser-only now take a permission: a non-superuser holding it is
served (through a session, or an API key with the scope the method needs), one lacking it gets
a 403 naming it and changes nothing. Superusers keep passing (tests/integration/api/
test_authorization.py and the slices' own tests)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from src.infrastructure.config import settings
from src.modules.audit.context import SYSTEM
from src.modules.common.permissions import Permission
from src.modules.rate_limit.models import RateLimit
from src.modules.rate_limit.permissions import RATELIMIT_MANAGE
from src.modules.tier.models import Tier
from src.modules.tier.permissions import TIER_MANAGE
from src.modules.tier.schemas import TierCreate
from src.modules.tier.service import TierService
from src.modules.user.models import User
from src.modules.user.permissions import USER_READ, USER_UPDATE
from tests.helpers.factories import create_user, login
from tests.helpers.roles import grant

pytestmark = pytest.mark.integration

API = "/api/v1"


async def signed_in(client: AsyncClient, db_session, *permissions: Permission) -> dict[str, Any]:
    user = await create_user(db_session)
    if permissions:
        await grant(db_session, user, *permissions)
    await db_session.commit()
    await login(client, user["username"])
    return user


async def tier_names(db_session) -> list[str]:
    return sorted((await db_session.execute(select(Tier.name))).scalars())


async def test_the_user_list_needs_user_read(client, db_session):
    await signed_in(client, db_session, USER_UPDATE)
    refused = await client.get(f"{API}/users")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Missing permission: user.read"
    await grant(db_session, await create_user(db_session), USER_READ)  # someone else's grant
    assert (await client.get(f"{API}/users")).status_code == 403


async def test_a_user_read_holder_lists_users(client, db_session):
    reader = await signed_in(client, db_session, USER_READ)
    response = await client.get(f"{API}/users")
    assert response.status_code == 200
    assert reader["username"] in [user["username"] for user in response.json()["data"]]
    for user in response.json()["data"]:
        assert "hashed_password" not in user


async def test_tier_assignment_needs_user_update(client, db_session):
    await TierService().create(payload=TierCreate(name="gold"), db=db_session, audit=SYSTEM)
    target = await create_user(db_session)
    await signed_in(client, db_session, USER_READ, TIER_MANAGE)
    path = f"{API}/users/{target['username']}/tier"

    refused = await client.patch(path, json={"tier_name": "gold"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Missing permission: user.update"
    stored = await db_session.scalar(select(User.tier_id).where(User.id == target["id"]))
    assert stored == target["tier_id"]

    await grant(db_session, (await _me(client, db_session)), USER_UPDATE)
    moved = await client.patch(path, json={"tier_name": "gold"})
    assert moved.status_code == 200, moved.text
    gold = await db_session.scalar(select(Tier.id).where(Tier.name == "gold"))
    assert moved.json()["tier_id"] == gold


async def _me(client: AsyncClient, db_session) -> dict[str, Any]:
    me = (await client.get(f"{API}/users/me")).json()
    return {"id": me["id"]}


async def test_tier_management_needs_tier_manage(client, db_session):
    await signed_in(client, db_session, USER_READ, USER_UPDATE, RATELIMIT_MANAGE)
    before = await tier_names(db_session)
    for method, path, body in (
        ("POST", f"{API}/tiers", {"name": "platinum"}),
        ("PATCH", f"{API}/tiers/{settings.DEFAULT_TIER_NAME}", {"name": "x"}),
        ("DELETE", f"{API}/tiers/{settings.DEFAULT_TIER_NAME}", None),
    ):
        refused = await client.request(method, path, json=body)
        assert refused.status_code == 403, (method, path)
        assert refused.json()["detail"] == "Missing permission: tier.manage"
    assert await tier_names(db_session) == before


async def test_a_tier_manage_holder_manages_tiers(client, db_session):
    await signed_in(client, db_session, TIER_MANAGE)
    assert (await client.post(f"{API}/tiers", json={"name": "platinum"})).status_code == 201
    renamed = await client.patch(f"{API}/tiers/platinum", json={"name": "diamond"})
    assert renamed.status_code == 200
    assert "diamond" in await tier_names(db_session)
    assert (await client.delete(f"{API}/tiers/diamond")).status_code == 204
    assert "diamond" not in await tier_names(db_session)


async def test_rate_limit_rules_need_ratelimit_manage(client, db_session):
    rules = f"{API}/tiers/{settings.DEFAULT_TIER_NAME}/rate-limits"
    body = {"path": "/api/v1/users/me", "max_requests": 5, "period_seconds": 60}
    await signed_in(client, db_session, TIER_MANAGE, USER_UPDATE)
    await TierService().ensure_default(db=db_session)
    await db_session.commit()
    for method, payload in (("GET", None), ("POST", body)):
        refused = await client.request(method, rules, json=payload)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Missing permission: ratelimit.manage"
    assert (await db_session.execute(select(RateLimit.id))).all() == []

    await grant(db_session, await _me(client, db_session), RATELIMIT_MANAGE)
    created = await client.post(rules, json=body)
    assert created.status_code == 201, created.text
    rule = f"{rules}/{created.json()['id']}"
    assert (await client.get(rules)).json()["total_count"] == 1
    assert (await client.get(rule)).status_code == 200
    assert (await client.patch(rule, json={"max_requests": 9})).json()["max_requests"] == 9
    assert (await client.delete(rule)).status_code == 204
    assert (await db_session.execute(select(RateLimit.id))).all() == []


async def test_an_api_key_acts_with_its_owners_permissions_within_its_scopes(
    client, plain_client, db_session
):
    await TierService().create(payload=TierCreate(name="gold"), db=db_session, audit=SYSTEM)
    owner = await signed_in(client, db_session, USER_READ, USER_UPDATE)
    read_only = (await client.post(f"{API}/api-keys", json={"name": "ro"})).json()["key"]
    writer = (
        await client.post(f"{API}/api-keys", json={"name": "rw", "scopes": ["read", "write"]})
    ).json()["key"]
    path = f"{API}/users/{owner['username']}/tier"

    listed = await plain_client.get(f"{API}/users", headers={"X-API-Key": read_only})
    assert listed.status_code == 200
    refused = await plain_client.patch(
        path, json={"tier_name": "gold"}, headers={"X-API-Key": read_only}
    )
    assert refused.status_code == 403
    assert "write" in refused.json()["detail"]
    moved = await plain_client.patch(
        path, json={"tier_name": "gold"}, headers={"X-API-Key": writer}
    )
    assert moved.status_code == 200, moved.text
    # The key holds no more than its owner: tiers need tier.manage, which the owner lacks.
    tier = await plain_client.post(
        f"{API}/tiers", json={"name": "platinum"}, headers={"X-API-Key": writer}
    )
    assert tier.status_code == 403
    assert tier.json()["detail"] == "Missing permission: tier.manage"
