"""API keys through HTTP: made by a session (the key shown once), `X-API-Key` as the owner
(`via="apikey"`, no CSRF, the key's scopes), only ever narrowed, revoked for good, refused by
session-only routes, `last_used_*` written at most once a minute, resolved in one query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event, select

from src.infrastructure.config import settings
from src.modules.auth.apikeys import service as apikey_service
from src.modules.auth.apikeys.models import ApiKey
from tests.helpers.factories import DEFAULT_PASSWORD, create_user, login

pytestmark = pytest.mark.integration

KEYS = "/api/v1/api-keys"
ME = "/api/v1/users/me"
WHOAMI = "/api/v1/auth/me"


@pytest.fixture
async def owner(client: AsyncClient, db_session) -> dict[str, Any]:
    user = await create_user(db_session)
    await db_session.commit()
    await login(client, user["username"])
    return user


async def make_key(client: AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post(KEYS, json={"name": "ci", **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def with_key(key: str) -> dict[str, bytes]:
    return {"X-API-Key": key.encode("latin-1")}  # bytes: any byte a client may send


async def test_the_key_is_shown_once_and_listed_newest_first_without_it(client, owner):
    first = await make_key(client, name="first")
    second = await make_key(client, name="second", scopes=["read", "write"])
    assert first["key"].startswith(f"fk_{first['prefix']}_")
    assert first["scopes"] == ["read"]
    assert second["scopes"] == ["read", "write"]
    listed = await client.get(KEYS, params={"items_per_page": 1})
    assert listed.status_code == 200
    page = listed.json()
    assert page["total_count"] == 2
    assert page["has_more"] is True
    assert [item["name"] for item in page["data"]] == ["second"]
    everything = (await client.get(KEYS)).json()["data"]
    assert [item["name"] for item in everything] == ["second", "first"]
    fetched = await client.get(f"{KEYS}/{first['id']}")
    assert fetched.status_code == 200
    for shown in (*everything, fetched.json()):
        assert "key" not in shown
        assert "key_hash" not in shown
    assert first["key"] not in listed.text + fetched.text


async def test_a_key_authenticates_as_its_owner_without_csrf(client, plain_client, owner):
    created = await make_key(client, scopes=["read", "write"])
    me = await plain_client.get(ME, headers=with_key(created["key"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == owner["username"]
    whoami = (await plain_client.get(WHOAMI, headers=with_key(created["key"]))).json()
    assert whoami["via"] == "apikey"
    assert whoami["session_id"] is None
    assert (await client.get(WHOAMI)).json()["via"] == "session"
    # Its owner deleted (by a session: a key cannot delete an account), the key is dead.
    deleted = await client.delete(f"/api/v1/users/{owner['username']}")
    assert deleted.status_code == 204, deleted.text
    assert (await plain_client.get(ME, headers=with_key(created["key"]))).status_code == 401


async def test_a_write_key_uses_unsafe_methods_without_csrf_a_read_key_cannot(
    superuser_client, plain_client
):
    writer = await make_key(superuser_client, name="writer", scopes=["read", "write"])
    reader = await make_key(superuser_client, name="reader")

    # No cookie, no CSRF header: the key's `write` scope is what counts.
    made = await plain_client.post(
        "/api/v1/tiers", json={"name": "keyed"}, headers=with_key(writer["key"])
    )
    refused = await plain_client.post(
        "/api/v1/tiers", json={"name": "refused"}, headers=with_key(reader["key"])
    )

    assert made.status_code == 201, made.text
    assert refused.status_code == 403
    assert "write" in refused.json()["detail"]


async def test_dead_and_wrong_keys_are_401(client, plain_client, owner, db_session):
    revoked = await make_key(client, name="revoked")
    deactivated = await make_key(client, name="deactivated")
    expired = await make_key(client, name="expired")
    live = await make_key(client, name="live")
    assert (await client.delete(f"{KEYS}/{revoked['id']}")).status_code == 204
    assert (await client.delete(f"{KEYS}/{revoked['id']}")).status_code == 204  # idempotent
    patched = await client.patch(f"{KEYS}/{deactivated['id']}", json={"is_active": False})
    assert patched.status_code == 200
    assert patched.json()["is_active"] is False
    row = await db_session.get(ApiKey, expired["id"])
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db_session.commit()
    wrong_secret = live["key"][:-4] + ("aaaa" if not live["key"].endswith("aaaa") else "bbbb")
    for key in (
        revoked["key"],
        deactivated["key"],
        expired["key"],
        wrong_secret,
        "fk_nope",
        "garbage",
        "fk_" + "é" * 8 + "_secret",
    ):
        response = await plain_client.get(ME, headers=with_key(key))
        assert response.status_code == 401, key
    # The revoked row stays, for audit.
    audit = (await client.get(f"{KEYS}/{revoked['id']}")).json()
    assert audit["revoked_at"] is not None
    assert audit["is_active"] is False
    assert (await client.patch(f"{KEYS}/{revoked['id']}", json={"name": "x"})).status_code == 409
    assert (await plain_client.get(ME, headers=with_key(live["key"]))).status_code == 200


async def test_a_key_only_ever_narrows(client, owner, db_session):
    soon = datetime.now(UTC) + timedelta(days=10)
    created = await make_key(client, scopes=["read", "write"], expires_at=soon.isoformat())
    url = f"{KEYS}/{created['id']}"
    renamed = await client.patch(url, json={"name": "renamed"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "renamed"
    narrowed = await client.patch(url, json={"scopes": ["read"]})
    assert narrowed.status_code == 200
    assert narrowed.json()["scopes"] == ["read"]
    earlier = soon - timedelta(days=5)
    forward = await client.patch(url, json={"expires_at": earlier.isoformat()})
    assert forward.status_code == 200
    for refused in (
        {"scopes": ["read", "write"]},  # widening
        {"scopes": ["admin"]},  # not a scope at all
        {"expires_at": (soon + timedelta(days=30)).isoformat()},  # later
        {"expires_at": None},  # never
        {"expires_at": (datetime.now(UTC) - timedelta(days=1)).isoformat()},  # past
        {"name": "sneaky", "scopes": ["read", "write"]},  # all or nothing
    ):
        response = await client.patch(url, json=refused)
        assert response.status_code == 422, (refused, response.text)
    assert (await client.patch(url, json={"is_active": False})).status_code == 200
    reactivate = await client.patch(url, json={"is_active": True})
    assert reactivate.status_code == 422
    row = (await db_session.execute(select(ApiKey).where(ApiKey.id == created["id"]))).scalar_one()
    await db_session.refresh(row)
    assert (row.name, row.scopes, row.is_active) == ("renamed", ["read"], False)
    assert abs((row.expires_at - earlier).total_seconds()) < 1


async def test_session_only_routes_refuse_keys(client, plain_client, owner):
    created = await make_key(client, scopes=["read", "write"])
    headers = with_key(created["key"])
    for method, path, body in (
        ("get", KEYS, None),
        ("post", KEYS, {"name": "by key"}),
        ("get", f"{KEYS}/{created['id']}", None),
        ("patch", f"{KEYS}/{created['id']}", {"name": "x"}),
        ("delete", f"{KEYS}/{created['id']}", None),
        (
            "post",
            "/api/v1/auth/change-password",
            {"current_password": DEFAULT_PASSWORD, "new_password": "Other-Tundra-Lantern-77"},
        ),
        ("post", "/api/v1/auth/logout", None),
        ("post", "/api/v1/auth/logout-all", None),
        ("get", "/api/v1/auth/sessions", None),
        ("get", "/api/v1/auth/mfa", None),
        ("post", "/api/v1/auth/mfa/enroll", {"password": DEFAULT_PASSWORD}),
        ("delete", f"/api/v1/users/{owner['username']}", None),
    ):
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        response = await plain_client.request(method, path, **kwargs)
        assert response.status_code == 401, (method, path, response.text)
        assert "API keys are not accepted" in response.json()["detail"], path
    # Nothing happened: the key and the session both still work.
    assert (await plain_client.get(ME, headers=headers)).status_code == 200
    assert (await client.get(KEYS)).json()["total_count"] == 1


async def test_last_used_is_written_at_most_once_a_minute(
    client, plain_client, owner, db_session, monkeypatch
):
    created = await make_key(client)
    now = datetime.now(UTC)
    monkeypatch.setattr(apikey_service, "utcnow", lambda: now)

    async def last_used() -> Any:
        row = await db_session.get(ApiKey, created["id"])
        await db_session.refresh(row)
        return row.last_used_at, row.last_used_ip

    assert await last_used() == (None, None)
    assert (await plain_client.get(ME, headers=with_key(created["key"]))).status_code == 200
    first, ip = await last_used()
    assert abs((first - now).total_seconds()) < 1
    assert ip
    now += timedelta(seconds=59)
    await plain_client.get(ME, headers=with_key(created["key"]))
    assert (await last_used())[0] == first
    now += timedelta(seconds=2)
    await plain_client.get(ME, headers=with_key(created["key"]))
    assert abs(((await last_used())[0] - now).total_seconds()) < 1


async def test_a_key_resolves_in_one_query(client, plain_client, owner, db_engine, monkeypatch):
    created = await make_key(client)
    headers = with_key(created["key"])
    assert (await plain_client.get(ME, headers=headers)).status_code == 200  # last_used written
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if "SAVEPOINT" not in statement.upper():
            statements.append(statement)

    event.listen(db_engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await plain_client.get(ME, headers=headers)).status_code == 200
    finally:
        event.remove(db_engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    assert "api_keys" in statements[0]
    assert "users" in statements[0]


async def test_the_rate_limit_counts_the_owner_whatever_the_credential(
    client, plain_client, owner, monkeypatch
):
    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", "3/minute")
    created = await make_key(client)
    assert (await client.get(ME)).status_code == 200
    assert (await plain_client.get(ME, headers=with_key(created["key"]))).status_code == 200
    assert (await client.get(ME)).status_code == 429
    assert (await plain_client.get(ME, headers=with_key(created["key"]))).status_code == 429


@pytest.mark.parametrize("expires_at", [4102444800, "4102444800", "2100-01-01T00:00:00"])
async def test_an_expiry_must_be_iso_text_with_an_offset(client, owner, expires_at):
    """Not a Unix time (which the schema's `format: date-time` does not allow), nor a time
    without a zone."""
    response = await client.post(KEYS, json={"name": "ci", "expires_at": expires_at})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "expires_at"]
