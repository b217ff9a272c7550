"""The caller's permissions ride the one lookup query of every authenticated request (database
store, Redis and memory stores, API keys), and a role or permission change applies from the
caller's very next request: nothing caches them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from src.infrastructure.config import settings
from src.infrastructure.redis_client import get_redis
from src.modules.auth import sessions as session_stores
from src.modules.rate_limit.permissions import RATELIMIT_MANAGE
from src.modules.rbac.permissions import ROLE_READ
from src.modules.user.permissions import USER_READ
from tests.helpers.csrf import browser
from tests.helpers.factories import create_user, login
from tests.helpers.roles import grant, make_role

pytestmark = pytest.mark.integration

MINE = "/api/v1/permissions/me"
USERS = "/api/v1/users"
BACKENDS = ["database", "redis", "memory"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "redis":
        request.getfixturevalue("clean_redis")
    monkeypatch.setattr(settings, "SESSION_BACKEND", request.param)
    session_stores._store.cache_clear()
    yield request.param
    session_stores._store.cache_clear()


class Statements:
    """Every SQL statement the engine runs while `counting` (savepoints aside: the tests'
    transaction wrapper, not the app's)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "SAVEPOINT" not in statement.upper():
            self.seen.append(statement)

    def __enter__(self) -> list[str]:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self)


async def test_a_session_resolves_with_its_permissions_in_one_statement(
    backend, client, db_session, db_engine, monkeypatch
):
    user = await create_user(db_session)
    await grant(db_session, user, USER_READ, ROLE_READ)
    await grant(db_session, user, USER_READ, RATELIMIT_MANAGE)  # overlapping roles
    await login(client, user["username"])
    assert (await client.get(MINE)).status_code == 200  # warm: rate-limit rules, first touch
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)

    with Statements(db_engine) as statements:
        response = await client.get(MINE)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "is_superuser": False,
        "permissions": ["ratelimit.manage", "role.read", "user.read"],
    }
    assert len(statements) == 1, statements
    (statement,) = statements
    for table in ("users", "user_roles", "role_permissions"):
        assert table in statement
    if backend == "database":
        assert "user_sessions" in statement


async def test_a_permission_guarded_read_costs_the_same_one_statement(
    client, db_session, db_engine, monkeypatch
):
    """`require_permissions` adds no query: the list of users is the lookup plus its page."""
    user = await create_user(db_session)
    await grant(db_session, user, USER_READ)
    await login(client, user["username"])
    assert (await client.get(USERS)).status_code == 200
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)

    with Statements(db_engine) as statements:
        response = await client.get(USERS)

    assert response.status_code == 200
    assert len(statements) == 2, statements
    assert "role_permissions" in statements[0]
    assert "role_permissions" not in statements[1]


async def test_an_api_key_resolves_with_its_owners_permissions_in_one_statement(
    client, plain_client, db_session, db_engine, monkeypatch
):
    user = await create_user(db_session)
    await grant(db_session, user, USER_READ)
    await login(client, user["username"])
    created = await client.post("/api/v1/api-keys", json={"name": "ci"})
    headers = {"X-API-Key": created.json()["key"]}
    assert (await plain_client.get(MINE, headers=headers)).status_code == 200  # last_used
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)

    with Statements(db_engine) as statements:
        response = await plain_client.get(MINE, headers=headers)

    assert response.json() == {"is_superuser": False, "permissions": ["user.read"]}
    assert len(statements) == 1, statements
    for table in ("api_keys", "users", "user_roles", "role_permissions"):
        assert table in statements[0]


async def test_redis_session_records_hold_no_permissions(
    client, db_session, clean_redis, monkeypatch
):
    """Nothing to go stale on another process: the record names the user, the permissions are
    read with the user's row on each request."""
    monkeypatch.setattr(settings, "SESSION_BACKEND", "redis")
    session_stores._store.cache_clear()
    try:
        user = await create_user(db_session)
        await grant(db_session, user, USER_READ)
        await login(client, user["username"])
        keys = [key async for key in get_redis().scan_iter("session:*")]
        records = [
            await get_redis().hgetall(key) for key in keys if await get_redis().type(key) == "hash"
        ]
        assert records
        for record in records:
            assert "permissions" not in record
            assert "user.read" not in str(record)
    finally:
        session_stores._store.cache_clear()


async def test_a_permission_change_applies_on_the_next_request(backend, app, client, db_session):
    user = await create_user(db_session)
    superuser = await create_user(db_session, is_superuser=True)
    await db_session.commit()
    await login(client, user["username"])
    readers = await make_role(db_session, ROLE_READ)

    async with browser(app) as admin:
        await login(admin, superuser["username"])

        refused = await client.get(USERS)
        assert refused.status_code == 403
        assert refused.json()["detail"] == "Missing permission: user.read"

        # Given a role: the very next request has it.
        assert (await admin.put(f"{USERS}/{user['username']}/roles/{readers}")).status_code == 204
        assert (await client.get(USERS)).status_code == 403  # the role lacks user.read so far
        changed = await admin.put(
            f"/api/v1/roles/{readers}/permissions", json={"permissions": ["user.read"]}
        )
        assert changed.status_code == 200, changed.text
        assert (await client.get(USERS)).status_code == 200
        assert (await client.get(MINE)).json()["permissions"] == ["user.read"]

        # The permission taken from the role: gone on the next request.
        emptied = await admin.put(f"/api/v1/roles/{readers}/permissions", json={"permissions": []})
        assert emptied.status_code == 200
        assert (await client.get(USERS)).status_code == 403

        # Back, then the role taken from the user.
        await admin.put(f"/api/v1/roles/{readers}/permissions", json={"permissions": ["user.read"]})
        assert (await client.get(USERS)).status_code == 200
        removed = await admin.delete(f"{USERS}/{user['username']}/roles/{readers}")
        assert removed.status_code == 204
        assert (await client.get(USERS)).status_code == 403

        # Given again, then the role deleted.
        await admin.put(f"{USERS}/{user['username']}/roles/{readers}")
        assert (await client.get(USERS)).status_code == 200
        assert (await admin.delete(f"/api/v1/roles/{readers}")).status_code == 204
        assert (await client.get(USERS)).status_code == 403
        assert (await client.get(MINE)).json()["permissions"] == []


async def test_an_api_keys_permissions_follow_its_owners_roles(
    app, client, plain_client, db_session
):
    user = await create_user(db_session)
    superuser = await create_user(db_session, is_superuser=True)
    await db_session.commit()
    await login(client, user["username"])
    key = (await client.post("/api/v1/api-keys", json={"name": "ci"})).json()["key"]
    headers = {"X-API-Key": key}
    role = await make_role(db_session, USER_READ)

    async with browser(app) as admin:
        await login(admin, superuser["username"])
        assert (await plain_client.get(USERS, headers=headers)).status_code == 403
        await admin.put(f"{USERS}/{user['username']}/roles/{role}")
        assert (await plain_client.get(USERS, headers=headers)).status_code == 200
        await admin.delete(f"{USERS}/{user['username']}/roles/{role}")
        assert (await plain_client.get(USERS, headers=headers)).status_code == 403
