"""Tier CRUD through the API, as a superuser (who may do it) and the rules around it."""

from __future__ import annotations

import pytest

from src.infrastructure.config import settings
from tests.helpers.factories import build_user_create_payload, create_user

TIERS = "/api/v1/tiers"
DEFAULT = settings.DEFAULT_TIER_NAME


async def _create(client, name: str) -> dict:
    response = await client.post(f"{TIERS}/", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.integration
async def test_create_tier(superuser_client):
    response = await superuser_client.post(f"{TIERS}/", json={"name": "gold"})

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "gold"
    assert isinstance(body["id"], int)
    assert body["created_at"]
    assert (await superuser_client.get(f"{TIERS}/gold")).json() == body


@pytest.mark.integration
async def test_create_tier_without_trailing_slash_strips_the_name(superuser_client):
    response = await superuser_client.post(TIERS, json={"name": "  silver  "})
    assert response.status_code == 201
    assert response.json()["name"] == "silver"


@pytest.mark.integration
async def test_create_duplicate_tier_is_409(superuser_client):
    await _create(superuser_client, "gold")

    response = await superuser_client.post(f"{TIERS}/", json={"name": "gold"})

    assert response.status_code == 409
    assert response.json()["detail"]
    listed = (await superuser_client.get(f"{TIERS}/", params={"items_per_page": 100})).json()
    assert [tier["name"] for tier in listed["data"]].count("gold") == 1


@pytest.mark.integration
async def test_create_default_tier_again_is_409(superuser_client):
    # The superuser was signed up, so the default tier exists already.
    response = await superuser_client.post(f"{TIERS}/", json={"name": DEFAULT})
    assert response.status_code == 409


@pytest.mark.integration
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-name"),
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"name": "   "}, id="blank-name"),
        pytest.param({"name": "x" * 51}, id="long-name"),
        pytest.param({"name": "bad/name"}, id="slash-in-name"),
        pytest.param({"name": "ok", "id": 7}, id="extra-field"),
    ],
)
async def test_create_tier_validates_the_body(superuser_client, body):
    response = await superuser_client.post(f"{TIERS}/", json=body)

    assert response.status_code == 422
    fields = {str(error["loc"][-1]) for error in response.json()["detail"]}
    assert fields == ({"id"} if "id" in body else {"name"})


@pytest.mark.integration
async def test_list_tiers_is_paginated(superuser_client):
    for name in ("bronze", "silver", "gold", "platinum"):
        await _create(superuser_client, name)
    everything = (await superuser_client.get(f"{TIERS}/", params={"items_per_page": 100})).json()
    total = everything["total_count"]
    assert total == len(everything["data"]) == 5  # four tiers and the default one
    assert {tier["name"] for tier in everything["data"]} == {
        DEFAULT,
        "bronze",
        "silver",
        "gold",
        "platinum",
    }

    first = (await superuser_client.get(TIERS, params={"page": 1, "items_per_page": 2})).json()
    assert set(first) == {"data", "total_count", "has_more", "page", "items_per_page"}
    assert (first["page"], first["items_per_page"], first["total_count"]) == (1, 2, 5)
    assert len(first["data"]) == 2
    assert first["has_more"] is True

    last = (await superuser_client.get(TIERS, params={"page": 3, "items_per_page": 2})).json()
    assert len(last["data"]) == 1
    assert last["has_more"] is False

    ids = [tier["id"] for tier in first["data"] + last["data"]]
    assert len(set(ids)) == 3

    beyond = (await superuser_client.get(TIERS, params={"page": 9, "items_per_page": 2})).json()
    assert beyond["data"] == []
    assert beyond["has_more"] is False


@pytest.mark.integration
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"items_per_page": settings.MAX_PAGE_SIZE + 1}, id="above-cap"),
        pytest.param({"items_per_page": 0}, id="zero"),
        pytest.param({"page": 0}, id="page-zero"),
    ],
)
async def test_list_tiers_refuses_bad_paging(client, params):
    response = await client.get(f"{TIERS}/", params=params)

    assert response.status_code == 422
    assert {str(error["loc"][-1]) for error in response.json()["detail"]} == set(params)


@pytest.mark.integration
async def test_get_tier_by_name(superuser_client):
    gold = await _create(superuser_client, "gold")

    for path in (f"{TIERS}/gold", f"{TIERS}/gold/"):
        response = await superuser_client.get(path)
        assert response.status_code == 200
        assert response.json() == gold


@pytest.mark.integration
async def test_get_unknown_tier_is_404(client):
    response = await client.get(f"{TIERS}/no-such-tier")
    assert response.status_code == 404
    assert "no-such-tier" in response.json()["detail"]


@pytest.mark.integration
async def test_rename_tier(superuser_client):
    gold = await _create(superuser_client, "gold")

    response = await superuser_client.patch(f"{TIERS}/gold", json={"name": "platinum"})

    assert response.status_code == 200
    assert response.json()["id"] == gold["id"]
    assert response.json()["name"] == "platinum"
    assert (await superuser_client.get(f"{TIERS}/gold")).status_code == 404
    assert (await superuser_client.get(f"{TIERS}/platinum/")).json()["id"] == gold["id"]


@pytest.mark.integration
async def test_rename_tier_keeps_its_users(superuser_client, db_session):
    await _create(superuser_client, "gold")
    user = await create_user(db_session)
    moved = await superuser_client.patch(
        f"/api/v1/users/{user['username']}/tier", json={"tier_name": "gold"}
    )
    assert moved.status_code == 200

    renamed = await superuser_client.patch(f"{TIERS}/gold/", json={"name": "platinum"})

    assert renamed.status_code == 200
    listed = (await superuser_client.get("/api/v1/users/", params={"items_per_page": 100})).json()
    row = next(row for row in listed["data"] if row["id"] == user["id"])
    assert row["tier_id"] == renamed.json()["id"]


@pytest.mark.integration
async def test_rename_tier_to_a_taken_name_is_409(superuser_client):
    await _create(superuser_client, "gold")
    await _create(superuser_client, "silver")

    response = await superuser_client.patch(f"{TIERS}/gold", json={"name": "silver"})

    assert response.status_code == 409
    assert (await superuser_client.get(f"{TIERS}/gold")).status_code == 200


@pytest.mark.integration
async def test_rename_tier_to_its_own_name_is_allowed(superuser_client):
    gold = await _create(superuser_client, "gold")
    response = await superuser_client.patch(f"{TIERS}/gold", json={"name": "gold"})
    assert response.status_code == 200
    assert response.json() == gold


@pytest.mark.integration
async def test_rename_unknown_tier_is_404(superuser_client):
    response = await superuser_client.patch(f"{TIERS}/no-such-tier", json={"name": "x"})
    assert response.status_code == 404


@pytest.mark.integration
async def test_delete_tier(superuser_client):
    await _create(superuser_client, "gold")

    response = await superuser_client.delete(f"{TIERS}/gold")

    assert response.status_code == 204
    assert response.content == b""
    assert (await superuser_client.get(f"{TIERS}/gold")).status_code == 404
    assert (await superuser_client.delete(f"{TIERS}/gold/")).status_code == 404


@pytest.mark.integration
async def test_delete_unknown_tier_is_404(superuser_client):
    assert (await superuser_client.delete(f"{TIERS}/no-such-tier")).status_code == 404


@pytest.mark.integration
async def test_delete_tier_still_assigned_to_a_user_is_409(superuser_client, db_session):
    gold = await _create(superuser_client, "gold")
    user = await create_user(db_session)
    moved = await superuser_client.patch(
        f"/api/v1/users/{user['username']}/tier", json={"tier_name": "gold"}
    )
    assert moved.status_code == 200

    response = await superuser_client.delete(f"{TIERS}/gold")

    assert response.status_code == 409
    assert "gold" in response.json()["detail"]
    # Nothing was removed, and the app keeps answering normally after the refusal.
    assert (await superuser_client.get(f"{TIERS}/gold")).json() == gold
    assert (await superuser_client.get(f"/api/v1/users/{user['username']}")).status_code == 200

    # Once nobody is on it, it can go.
    back = await superuser_client.patch(
        f"/api/v1/users/{user['username']}/tier", json={"tier_name": DEFAULT}
    )
    assert back.status_code == 200
    assert (await superuser_client.delete(f"{TIERS}/gold")).status_code == 204


@pytest.mark.integration
async def test_delete_tier_held_only_by_a_soft_deleted_user_is_still_409(
    superuser_client, db_session
):
    await _create(superuser_client, "gold")
    user = await create_user(db_session)
    users = "/api/v1/users"
    assert (
        await superuser_client.patch(f"{users}/{user['username']}/tier", json={"tier_name": "gold"})
    ).status_code == 200
    assert (await superuser_client.delete(f"{users}/{user['username']}")).status_code == 204

    # The soft-deleted row still points at the tier: refused cleanly, never a 500.
    assert (await superuser_client.delete(f"{TIERS}/gold")).status_code == 409


@pytest.mark.integration
async def test_default_tier_cannot_be_deleted(superuser_client):
    default = await superuser_client.get(f"{TIERS}/{DEFAULT}")
    assert default.status_code == 200

    response = await superuser_client.delete(f"{TIERS}/{DEFAULT}")

    assert response.status_code == 409
    assert "default" in response.json()["detail"].lower()
    assert (await superuser_client.get(f"{TIERS}/{DEFAULT}")).json() == default.json()


@pytest.mark.integration
async def test_new_users_get_the_default_tier(client):
    payload = build_user_create_payload()
    response = await client.post("/api/v1/users/", json=payload)
    assert response.status_code == 201

    default = await client.get(f"{TIERS}/{DEFAULT}")
    assert default.status_code == 200
    assert response.json()["tier_id"] == default.json()["id"]


@pytest.mark.integration
async def test_new_users_keep_the_default_tier_when_other_tiers_exist(superuser_client):
    await _create(superuser_client, "aaa-first-by-name")
    payload = build_user_create_payload()

    response = await superuser_client.post("/api/v1/users/", json=payload)

    assert response.status_code == 201
    default = (await superuser_client.get(f"{TIERS}/{DEFAULT}")).json()
    assert response.json()["tier_id"] == default["id"]


@pytest.mark.integration
async def test_tier_reads_are_public(client, superuser_client):
    """Tiers are the public price list: readable without a session."""
    await _create(superuser_client, "gold")
    await client.post("/api/v1/auth/logout")

    assert (await client.get("/api/v1/users/me")).status_code == 401
    assert (await client.get(f"{TIERS}/")).status_code == 200
    assert (await client.get(f"{TIERS}/gold")).json()["name"] == "gold"


@pytest.mark.integration
async def test_the_default_tier_cannot_be_renamed(superuser_client):
    from src.infrastructure.config import settings

    default = settings.DEFAULT_TIER_NAME
    response = await superuser_client.patch(f"/api/v1/tiers/{default}", json={"name": "basic"})
    assert response.status_code == 409
    assert (await superuser_client.get(f"/api/v1/tiers/{default}")).status_code == 200
