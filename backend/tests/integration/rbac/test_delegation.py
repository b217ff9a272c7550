"""Delegation: a non-superuser grants, removes and assigns only permissions it holds, never
touches a superuser's roles, and a refused request writes nothing (every refusal below reads
the rows back afterwards)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from src.modules.rbac.permissions import (
    ROLE_ASSIGN,
    ROLE_CREATE,
    ROLE_DELETE,
    ROLE_UPDATE,
)
from src.modules.tier.permissions import TIER_MANAGE
from src.modules.user.permissions import USER_READ, USER_UPDATE
from tests.helpers.csrf import browser
from tests.helpers.factories import create_user, login
from tests.helpers.roles import give_role, grant, make_role, role_names, role_permissions, roles_of

pytestmark = pytest.mark.integration

ROLES = "/api/v1/roles"
NOT_HELD = "You can only grant, remove or assign permissions you hold yourself. "


def user_roles(user: dict[str, Any], role_id: int) -> str:
    return f"/api/v1/users/{user['username']}/roles/{role_id}"


@pytest.fixture
async def manager(client: AsyncClient, db_session) -> dict[str, Any]:
    """A signed-in non-superuser holding every role.* permission, `user.read` and nothing
    else: `user.update` and `tier.manage` are not theirs to hand on."""
    user = await create_user(db_session)
    await grant(db_session, user, ROLE_ASSIGN, ROLE_CREATE, ROLE_UPDATE, ROLE_DELETE, USER_READ)
    await login(client, user["username"])
    return user


async def test_assigning_a_role_with_a_permission_you_lack_is_refused(client, manager, db_session):
    target = await create_user(db_session)
    role_id = await make_role(db_session, USER_READ, TIER_MANAGE)

    refused = await client.put(user_roles(target, role_id))

    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permission: tier.manage"
    assert await roles_of(db_session, target["id"]) == []


async def test_assigning_yourself_a_wider_role_is_refused(client, manager, db_session):
    before = await roles_of(db_session, manager["id"])
    role_id = await make_role(db_session, USER_UPDATE)
    refused = await client.put(user_roles(manager, role_id))
    assert refused.status_code == 403
    assert await roles_of(db_session, manager["id"]) == before
    assert (await client.get("/api/v1/permissions/me")).json()["permissions"] == sorted(
        ["role.assign", "role.create", "role.update", "role.delete", "user.read"]
    )


async def test_assigning_needs_role_assign_even_for_permissions_you_hold(client, db_session):
    caller = await create_user(db_session)
    await grant(db_session, caller, USER_READ, ROLE_UPDATE)
    await login(client, caller["username"])
    target = await create_user(db_session)
    role_id = await make_role(db_session, USER_READ)
    refused = await client.put(user_roles(target, role_id))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Missing permission: role.assign"
    assert await roles_of(db_session, target["id"]) == []


async def test_unassigning_a_role_with_a_permission_you_lack_is_refused(
    client, manager, db_session
):
    target = await create_user(db_session)
    role_id = await make_role(db_session, USER_UPDATE)
    await give_role(db_session, target["id"], role_id)

    refused = await client.delete(user_roles(target, role_id))

    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permission: user.update"
    assert await roles_of(db_session, target["id"]) == [role_id]


async def test_a_superusers_roles_are_not_a_non_superusers_to_change(
    app, client, manager, db_session
):
    superuser = await create_user(db_session, is_superuser=True)
    held = await make_role(db_session, USER_READ)  # the manager holds all of it
    other = await make_role(db_session, USER_READ)
    await give_role(db_session, superuser["id"], held)

    assigned = await client.put(user_roles(superuser, other))
    unassigned = await client.delete(user_roles(superuser, held))

    for refused in (assigned, unassigned):
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Only a superuser can change a superuser's roles"
    assert await roles_of(db_session, superuser["id"]) == [held]

    # A superuser may.
    async with browser(app) as admin:
        await login(admin, superuser["username"])
        assert (await admin.put(user_roles(superuser, other))).status_code == 204
        assert (await admin.delete(user_roles(superuser, held))).status_code == 204
    assert await roles_of(db_session, superuser["id"]) == [other]


async def test_adding_a_permission_you_lack_to_a_role_is_refused(client, manager, db_session):
    role_id = await make_role(db_session, USER_READ)
    refused = await client.put(
        f"{ROLES}/{role_id}/permissions",
        json={"permissions": ["user.read", "tier.manage", "user.update"]},
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permissions: tier.manage, user.update"
    assert await role_permissions(db_session, role_id) == ["user.read"]


async def test_removing_a_permission_you_lack_from_a_role_is_refused(client, manager, db_session):
    role_id = await make_role(db_session, USER_READ, TIER_MANAGE)
    refused = await client.put(f"{ROLES}/{role_id}/permissions", json={"permissions": []})
    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permission: tier.manage"
    assert await role_permissions(db_session, role_id) == ["tier.manage", "user.read"]


async def test_changing_only_what_you_hold_leaves_the_rest_of_a_role_alone(
    client, manager, db_session
):
    """Only what is added or removed must be yours: a role may keep permissions you lack."""
    role_id = await make_role(db_session, TIER_MANAGE)
    changed = await client.put(
        f"{ROLES}/{role_id}/permissions", json={"permissions": ["tier.manage", "user.read"]}
    )
    assert changed.status_code == 200, changed.text
    assert await role_permissions(db_session, role_id) == ["tier.manage", "user.read"]
    back = await client.put(f"{ROLES}/{role_id}/permissions", json={"permissions": ["tier.manage"]})
    assert back.status_code == 200
    assert await role_permissions(db_session, role_id) == ["tier.manage"]


async def test_deleting_a_role_with_a_permission_you_lack_is_refused(client, manager, db_session):
    target = await create_user(db_session)
    role_id = await make_role(db_session, USER_READ, USER_UPDATE, name="editors")
    await give_role(db_session, target["id"], role_id)

    refused = await client.delete(f"{ROLES}/{role_id}")

    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permission: user.update"
    assert "editors" in await role_names(db_session)
    assert await role_permissions(db_session, role_id) == ["user.read", "user.update"]
    assert await roles_of(db_session, target["id"]) == [role_id]


async def test_creating_a_role_with_a_permission_you_lack_is_refused(client, manager, db_session):
    before = await role_names(db_session)
    refused = await client.post(
        ROLES, json={"name": "escalate", "permissions": ["user.read", "user.update"]}
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == NOT_HELD + "Missing permission: user.update"
    assert await role_names(db_session) == before


async def test_what_you_hold_you_may_hand_on(app, client, manager, db_session):
    created = await client.post(ROLES, json={"name": "readers", "permissions": ["user.read"]})
    assert created.status_code == 201, created.text
    role_id = created.json()["id"]
    target = await create_user(db_session)
    assert (await client.put(user_roles(target, role_id))).status_code == 204
    assert await roles_of(db_session, target["id"]) == [role_id]
    async with browser(app) as theirs:
        await login(theirs, target["username"])
        assert (await theirs.get("/api/v1/users")).status_code == 200
        assert (await client.delete(user_roles(target, role_id))).status_code == 204
        assert (await theirs.get("/api/v1/users")).status_code == 403
    assert (await client.delete(f"{ROLES}/{role_id}")).status_code == 204
    assert "readers" not in await role_names(db_session)


async def test_an_api_key_without_write_scope_changes_no_role(
    client, plain_client, manager, db_session
):
    key = (await client.post("/api/v1/api-keys", json={"name": "ro"})).json()["key"]
    target = await create_user(db_session)
    role_id = await make_role(db_session, USER_READ)
    refused = await plain_client.put(user_roles(target, role_id), headers={"X-API-Key": key})
    assert refused.status_code == 403
    assert "write" in refused.json()["detail"]
    assert await roles_of(db_session, target["id"]) == []
