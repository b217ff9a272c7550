"""Roles and the permission registry through HTTP: the registry and the caller's effective
permissions, roles CRUD (unique names, paginated), replacing a role's permissions (unknown
names refused by name, nothing written), and a user's roles."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from src.modules.rbac.permissions import ROLE_READ
from src.modules.rbac.registry import REGISTRY
from src.modules.user.permissions import USER_READ
from tests.helpers.csrf import browser
from tests.helpers.factories import create_user, login
from tests.helpers.roles import (
    PROMISED_PERMISSIONS,
    give_role,
    grant,
    make_role,
    role_names,
    role_permissions,
    roles_of,
)

pytestmark = pytest.mark.integration

ROLES = "/api/v1/roles"
PERMISSIONS = "/api/v1/permissions"


async def test_the_registry_lists_every_permission_with_its_description(client, db_session):
    assert (await client.get(PERMISSIONS)).status_code == 401
    user = await create_user(db_session)
    await login(client, user["username"])
    response = await client.get(PERMISSIONS)
    assert response.status_code == 200
    listed = response.json()
    assert listed == [{"name": p.name, "description": p.description} for p in REGISTRY.values()]
    names = {item["name"] for item in listed}
    assert names >= set(PROMISED_PERMISSIONS)
    assert all(item["description"] for item in listed)


async def test_my_permissions(client, superuser_client, db_session):
    me = await client.get(f"{PERMISSIONS}/me")
    assert me.json() == {"is_superuser": True, "permissions": list(REGISTRY)}
    user = await create_user(db_session)
    await login(client, user["username"])
    assert (await client.get(f"{PERMISSIONS}/me")).json() == {
        "is_superuser": False,
        "permissions": [],
    }
    await grant(db_session, user, ROLE_READ, USER_READ)
    assert (await client.get(f"{PERMISSIONS}/me")).json()["permissions"] == [
        "role.read",
        "user.read",
    ]


async def test_roles_crud(superuser_client: AsyncClient, db_session):
    client = superuser_client
    created = await client.post(
        ROLES,
        json={
            "name": "support",
            "description": "Helps users",
            "permissions": ["user.read", "role.read", "user.read"],
        },
    )
    assert created.status_code == 201, created.text
    role = created.json()
    assert role["name"] == "support"
    assert role["description"] == "Helps users"
    assert role["permissions"] == ["role.read", "user.read"]
    assert await role_permissions(db_session, role["id"]) == ["role.read", "user.read"]

    duplicate = await client.post(ROLES, json={"name": "support"})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "A role with this name already exists"

    second = (await client.post(ROLES, json={"name": "auditors"})).json()
    assert second["permissions"] == []
    assert second["description"] == ""

    page = (await client.get(ROLES, params={"items_per_page": 1})).json()
    assert page["total_count"] == 2
    assert page["has_more"] is True
    assert [item["name"] for item in page["data"]] == ["support"]
    page2 = (await client.get(ROLES, params={"items_per_page": 1, "page": 2})).json()
    assert [item["name"] for item in page2["data"]] == ["auditors"]
    beyond = (await client.get(ROLES, params={"items_per_page": 1, "page": 5})).json()
    assert beyond["data"] == []
    assert beyond["total_count"] == 2

    fetched = await client.get(f"{ROLES}/{role['id']}")
    assert fetched.json() == role
    assert (await client.get(f"{ROLES}/999999")).status_code == 404

    renamed = await client.patch(f"{ROLES}/{role['id']}", json={"name": "helpdesk"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "helpdesk"
    assert renamed.json()["permissions"] == ["role.read", "user.read"]
    clash = await client.patch(f"{ROLES}/{role['id']}", json={"name": "auditors"})
    assert clash.status_code == 409
    assert sorted(await role_names(db_session)) == ["auditors", "helpdesk"]
    described = await client.patch(f"{ROLES}/{role['id']}", json={"description": "Desk"})
    assert described.json()["description"] == "Desk"

    replaced = await client.put(
        f"{ROLES}/{role['id']}/permissions", json={"permissions": ["tier.manage", "user.read"]}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["permissions"] == ["tier.manage", "user.read"]
    assert await role_permissions(db_session, role["id"]) == ["tier.manage", "user.read"]

    deleted = await client.delete(f"{ROLES}/{role['id']}")
    assert deleted.status_code == 204
    assert (await client.get(f"{ROLES}/{role['id']}")).status_code == 404
    assert await role_permissions(db_session, role["id"]) == []
    assert (await client.delete(f"{ROLES}/{role['id']}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": " "},
        {"name": "x" * 51},
        {"name": "a/b"},
        {"name": "ok", "unexpected": 1},
        {"name": "ok", "description": "d" * 256},
        {"name": "ok", "permissions": "user.read"},
        {"name": "ok", "permissions": ["User.Read"]},
        {"name": "ok", "permissions": ["user.read,role.read"]},
        {"name": "ok", "permissions": ["<b>.x"]},
        {"name": "ok", "description": "a\u0000b"},
        {"name": "ok", "description": "line\nbreak"},
    ],
)
async def test_a_bad_role_is_a_422(superuser_client, db_session, body):
    response = await superuser_client.post(ROLES, json=body)
    assert response.status_code == 422
    assert await role_names(db_session) == []


async def test_unknown_permissions_are_refused_by_name_and_nothing_is_written(
    superuser_client, db_session
):
    client = superuser_client
    created = await client.post(
        ROLES, json={"name": "typo", "permissions": ["user.read", "users.raed", "no.pe"]}
    )
    assert created.status_code == 422
    detail = created.json()["detail"]
    assert detail[0]["loc"] == ["body", "permissions"]
    assert detail[0]["msg"] == "Unknown permissions: no.pe, users.raed"
    assert await role_names(db_session) == []

    role_id = await make_role(db_session, "user.read")
    replaced = await client.put(
        f"{ROLES}/{role_id}/permissions", json={"permissions": ["tier.manage", "tier.delete"]}
    )
    assert replaced.status_code == 422
    assert "tier.delete" in replaced.json()["detail"][0]["msg"]
    assert "tier.manage" not in replaced.json()["detail"][0]["msg"]
    assert await role_permissions(db_session, role_id) == ["user.read"]
    missing = await client.put(f"{ROLES}/999999/permissions", json={"permissions": []})
    assert missing.status_code == 404


async def test_a_users_roles(client, superuser_client, db_session, app):
    user = await create_user(db_session)
    other = await create_user(db_session)
    first = await make_role(db_session, "user.read")
    second = await make_role(db_session)
    path = f"/api/v1/users/{user['username']}/roles"

    assert (await superuser_client.put(f"{path}/{first}")).status_code == 204
    assert (await superuser_client.put(f"{path}/{first}")).status_code == 204  # idempotent
    assert (await superuser_client.put(f"{path}/{second}")).status_code == 204
    assert await roles_of(db_session, user["id"]) == [first, second]
    listed = (await superuser_client.get(path)).json()
    assert [role["id"] for role in listed["data"]] == [first, second]
    assert listed["data"][0]["permissions"] == ["user.read"]
    assert listed["total_count"] == 2

    assert (await superuser_client.put(f"{path}/999999")).status_code == 404
    assert (await superuser_client.put(f"/api/v1/users/nobody/roles/{first}")).status_code == 404
    assert (await superuser_client.delete(f"{path}/{second}")).status_code == 204
    assert (await superuser_client.delete(f"{path}/{second}")).status_code == 404
    assert await roles_of(db_session, user["id"]) == [first]

    async with browser(app) as own:
        await login(own, user["username"])
        mine = await own.get(path)
        assert mine.status_code == 200
        assert [role["id"] for role in mine.json()["data"]] == [first]
        others = await own.get(f"/api/v1/users/{other['username']}/roles")
        assert others.status_code == 403
        assert others.json()["detail"] == "Missing permission: role.read"
        await grant(db_session, user, ROLE_READ)
        assert (await own.get(f"/api/v1/users/{other['username']}/roles")).status_code == 200
        empty = (await own.get(f"/api/v1/users/{other['username']}/roles")).json()
        assert empty["data"] == []
        assert empty["total_count"] == 0


async def test_a_deleted_role_leaves_no_assignment(superuser_client, db_session):
    user = await create_user(db_session)
    role_id = await make_role(db_session, "user.read")
    await superuser_client.put(f"/api/v1/users/{user['username']}/roles/{role_id}")
    assert await roles_of(db_session, user["id"]) == [role_id]
    assert (await superuser_client.delete(f"{ROLES}/{role_id}")).status_code == 204
    assert await roles_of(db_session, user["id"]) == []


@pytest.mark.parametrize(
    ("method", "path", "body", "needed"),
    [
        ("GET", ROLES, None, "role.read"),
        ("GET", f"{ROLES}/{{role}}", None, "role.read"),
        ("POST", ROLES, {"name": "new"}, "role.create"),
        ("PATCH", f"{ROLES}/{{role}}", {"name": "new"}, "role.update"),
        ("PUT", f"{ROLES}/{{role}}/permissions", {"permissions": []}, "role.update"),
        ("DELETE", f"{ROLES}/{{role}}", None, "role.delete"),
        ("PUT", "/api/v1/users/{user}/roles/{role}", None, "role.assign"),
        ("DELETE", "/api/v1/users/{user}/roles/{role}", None, "role.assign"),
    ],
)
async def test_each_role_route_needs_its_permission(client, db_session, method, path, body, needed):
    target = await create_user(db_session)
    role_id = await make_role(db_session)
    await give_role(db_session, target["id"], role_id)
    caller = await create_user(db_session)
    url = path.format(role=role_id, user=target["username"])
    assert (await client.request(method, url, json=body)).status_code == 401
    await login(client, caller["username"])
    others = [p for p in REGISTRY if p != needed]
    await grant(db_session, caller, *others)  # everything but the one needed

    refused = await client.request(method, url, json=body)

    assert refused.status_code == 403
    assert refused.json()["detail"] == f"Missing permission: {needed}"
    assert "new" not in await role_names(db_session)
    assert await roles_of(db_session, target["id"]) == [role_id]
    await grant(db_session, caller, needed)
    assert (await client.request(method, url, json=body)).status_code < 300
