"""`GET /api/v1/audit-events`: superusers only, newest first, every filter, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from src.modules.audit.models import AuditEvent
from tests.conftest import SUPERUSER
from tests.helpers.factories import create_user, login
from tests.helpers.roles import grant

pytestmark = pytest.mark.integration

URL = "/api/v1/audit-events"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
async def seeded(superuser_client, db_session):
    """Six events over six minutes by two actors on two targets; the superuser's own sign-in
    adds one more at the real time."""
    alice = await create_user(db_session, username="alice_audit")
    bob = await create_user(db_session, username="bob_audit")
    rows = [
        ("auth.login.failed", None, alice["id"], "user", str(alice["id"]), 0),
        ("auth.login.succeeded", alice["id"], alice["id"], "user", str(alice["id"]), 1),
        ("api_key.created", alice["id"], alice["id"], "api_key", "7", 2),
        ("api_key.revoked", alice["id"], alice["id"], "api_key", "7", 3),
        ("auth.login.succeeded", bob["id"], bob["id"], "user", str(bob["id"]), 4),
        ("tier.created", bob["id"], None, "tier", "3", 5),
    ]
    for kind, actor, target_user, target_type, target_id, minute in rows:
        db_session.add(
            AuditEvent(
                kind=kind,
                outcome="failure" if kind.endswith("failed") else "success",
                actor_id=actor,
                target_user_id=target_user,
                target_type=target_type,
                target_id=target_id,
                created_at=at(minute),
            )
        )
    await db_session.commit()
    return {"alice": alice, "bob": bob}


async def kinds(client, **params) -> list[str]:
    response = await client.get(URL, params=params)
    assert response.status_code == 200, response.text
    return [(row["kind"], row["created_at"]) for row in response.json()["data"]]


def only_seeded(rows):
    """The seeded rows (in 2026-06), leaving out the real-time sign-in of the fixture."""
    return [kind for kind, created in rows if created.startswith("2026-06-01")]


async def test_newest_first_and_filters(superuser_client, seeded):
    client = superuser_client
    alice, bob = seeded["alice"], seeded["bob"]
    window = {"since": at(0).isoformat(), "until": at(60).isoformat()}

    assert only_seeded(await kinds(client, **window)) == [
        "tier.created",
        "auth.login.succeeded",
        "api_key.revoked",
        "api_key.created",
        "auth.login.succeeded",
        "auth.login.failed",
    ]
    by_id = only_seeded(await kinds(client, actor=str(alice["id"])))
    assert by_id == ["api_key.revoked", "api_key.created", "auth.login.succeeded"]
    assert only_seeded(await kinds(client, actor="BOB_audit")) == [
        "tier.created",
        "auth.login.succeeded",
    ]
    assert only_seeded(await kinds(client, target_user="alice_audit")) == [
        "api_key.revoked",
        "api_key.created",
        "auth.login.succeeded",
        "auth.login.failed",
    ]
    assert only_seeded(await kinds(client, target_type="api_key", target_id="7")) == [
        "api_key.revoked",
        "api_key.created",
    ]
    assert only_seeded(await kinds(client, target_type="tier")) == ["tier.created"]
    several = await client.get(
        URL, params=[("kind", "auth.login.failed"), ("kind", "tier.created")]
    )
    assert [row["kind"] for row in several.json()["data"]] == ["tier.created", "auth.login.failed"]
    assert only_seeded(await kinds(client, since=at(2).isoformat(), until=at(4).isoformat())) == [
        "api_key.revoked",
        "api_key.created",
    ]
    combined = await kinds(client, actor=str(bob["id"]), kind="auth.login.succeeded")
    assert only_seeded(combined) == ["auth.login.succeeded"]
    assert await kinds(client, actor="no_such_user") == []
    assert await kinds(client, actor="2147483648") == []  # beyond any id: no match, no error


async def test_pagination(superuser_client, seeded):
    window = {"since": at(0).isoformat(), "until": at(60).isoformat(), "items_per_page": 4}
    first = (await superuser_client.get(URL, params=window | {"page": 1})).json()
    second = (await superuser_client.get(URL, params=window | {"page": 2})).json()

    assert (first["total_count"], first["has_more"], first["page"]) == (6, True, 1)
    assert (second["has_more"], len(second["data"])) == (False, 2)
    ids = [row["id"] for row in first["data"] + second["data"]]
    assert len(set(ids)) == 6
    assert [row["kind"] for row in second["data"]] == ["auth.login.succeeded", "auth.login.failed"]
    row = first["data"][0]
    assert set(row) == {
        "id",
        "created_at",
        "kind",
        "outcome",
        "reason",
        "actor_id",
        "target_type",
        "target_id",
        "target_user_id",
        "ip",
        "user_agent",
        "request_id",
        "data",
    }


async def test_an_empty_time_window_matches_nothing(superuser_client, seeded):
    for since, until in ((at(5), at(1)), (at(3), at(3))):
        params = {"since": since.isoformat(), "until": until.isoformat()}
        response = await superuser_client.get(URL, params=params)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == []
        assert response.json()["total_count"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "not.a.kind"},
        {"target_type": "planet"},
        {"since": "2026-06-01T12:00:00"},  # no offset: which time zone?
        {"until": "0.5"},  # a number is no date-time (pydantic alone reads it as a Unix time)
        {"since": "1700000000"},
        {"actor": "a b"},
        {"items_per_page": 0},
    ],
)
async def test_bad_filters_are_422(superuser_client, params):
    response = await superuser_client.get(URL, params=params)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


async def test_only_holders_of_audit_read_read_the_log(client, db_session):
    assert (await client.get(URL)).status_code == 401
    user = await create_user(db_session)
    await login(client, user["username"])
    response = await client.get(URL)
    assert response.status_code == 403
    assert "audit.read" in response.json()["detail"]

    await grant(db_session, user, "audit.read")
    response = await client.get(URL)  # the next request sees the new permission
    assert response.status_code == 200, response.text
    assert response.json()["total_count"] >= 1  # at least this user's own sign-in


async def test_the_superusers_own_sign_in_is_listed(superuser_client, db_session):
    response = await superuser_client.get(
        URL, params={"actor": SUPERUSER["username"], "kind": "auth.login.succeeded"}
    )
    [row] = response.json()["data"]
    assert row["ip"] == "127.0.0.1"
    assert row["request_id"]
    assert row["data"] == {"method": "password"}


async def test_documented_in_openapi(app):
    operation = app.openapi()["paths"][URL]["get"]
    assert {"200", "401", "403", "422", "429", "503"} <= set(operation["responses"])
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"actor", "target_user", "target_type", "target_id", "kind", "since", "until"} <= names
    assert {"page", "items_per_page"} <= names
