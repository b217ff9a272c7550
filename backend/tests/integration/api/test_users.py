import asyncio
import uuid
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from src.infrastructure.config import settings
from tests.helpers.csrf import CSRFAwareClient
from tests.helpers.factories import (
    DEFAULT_PASSWORD,
    build_user_create_payload,
    create_user,
    login,
)


@pytest.mark.integration
async def test_register_login_and_fetch_me(client, db_session):
    # Register
    payload = build_user_create_payload(email="alice@example.com", username="alice")
    register_response = await client.post("/api/v1/users/", json=payload)
    assert register_response.status_code == 201
    user_data = register_response.json()
    assert user_data["username"] == "alice"

    # Log in - sets session cookie on the client
    login_response = await client.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": payload["password"]},
    )
    assert login_response.status_code == 200

    # Authenticated request reuses the cookie automatically
    me_response = await client.get("/api/v1/users/me/")
    assert me_response.status_code == 200
    assert me_response.json()["username"] == "alice"


# --- everything below was appended; the test above is the page's example -----------------------

USERS = "/api/v1/users"
NEW_PASSWORD = "Lantern-Orbit-Mosaic-77"


def _new_client(app: Any) -> AsyncClient:
    """Another browser: its own cookies, same app (and the same test database override)."""
    return CSRFAwareClient(transport=ASGITransport(app=app), base_url="http://test")


def _error_fields(response: Any) -> set[str]:
    """The field names a 422 answer blames (last element of each error's `loc`)."""
    assert response.status_code == 422, response.text
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


# --- sign-up -------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_sign_up_returns_201_and_never_the_password(client):
    payload = build_user_create_payload(email="Bob@Example.COM", username="Bob_42")

    response = await client.post(f"{USERS}/", json=payload)

    assert response.status_code == 201
    body = response.json()
    assert not [key for key in body if "password" in key.lower() or "hash" in key.lower()]
    assert payload["password"] not in response.text
    assert body["username"] == "bob_42"
    assert body["email"] == "bob@example.com"
    assert body["name"] == payload["name"]
    assert body["is_superuser"] is False
    assert isinstance(body["id"], int)


@pytest.mark.integration
async def test_sign_up_without_trailing_slash_also_works(client):
    response = await client.post(USERS, json=build_user_create_payload())
    assert response.status_code == 201


@pytest.mark.integration
async def test_sign_up_with_an_email_taken_in_another_case_is_409(client):
    first = build_user_create_payload(email="alice@example.com")
    assert (await client.post(f"{USERS}/", json=first)).status_code == 201

    second = build_user_create_payload(email="Alice@Example.com")
    response = await client.post(f"{USERS}/", json=second)

    assert response.status_code == 409
    assert "email" in response.json()["detail"].lower()
    assert (await client.get(f"{USERS}/{second['username']}")).status_code == 404


@pytest.mark.integration
async def test_sign_up_with_a_username_taken_in_another_case_is_409(client):
    assert (
        await client.post(f"{USERS}/", json=build_user_create_payload(username="carol"))
    ).status_code == 201

    response = await client.post(f"{USERS}/", json=build_user_create_payload(username="CaRoL"))

    assert response.status_code == 409
    assert "username" in response.json()["detail"].lower()


@pytest.mark.integration
@pytest.mark.parametrize(
    "username",
    [
        pytest.param("ab", id="too-short"),
        pytest.param("a" * 31, id="too-long"),
        pytest.param("bad name", id="space"),
        pytest.param("bad!name", id="symbol"),
        pytest.param("_leading", id="leading-underscore"),
        pytest.param("trailing.", id="trailing-dot"),
        pytest.param("me", id="reserved-me"),
        pytest.param("ME", id="reserved-me-upper"),
        pytest.param("admin", id="reserved-admin"),
    ],
)
async def test_sign_up_refuses_bad_usernames_naming_the_field(client, username):
    payload = build_user_create_payload(username=username)

    response = await client.post(f"{USERS}/", json=payload)

    assert _error_fields(response) == {"username"}
    assert payload["password"] not in response.text


@pytest.mark.integration
@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Sh0rt!", id="too-short"),
        pytest.param("onlyletters", id="letters-only"),
        pytest.param("1234567890", id="digits-only"),
        pytest.param(" Padded123! ", id="surrounding-space"),
        pytest.param("x1" * (settings.PASSWORD_MAX_LENGTH // 2 + 1), id="too-long"),
    ],
)
async def test_sign_up_refuses_weak_passwords_naming_the_field(client, password):
    response = await client.post(f"{USERS}/", json=build_user_create_payload(password=password))

    assert _error_fields(response) == {"password"}
    assert password.strip() not in response.text  # the input is never echoed


@pytest.mark.integration
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("email", "not-an-email", id="bad-email"),
        pytest.param("name", "   ", id="blank-name"),
        pytest.param("name", "n" * 51, id="long-name"),
    ],
)
async def test_sign_up_refuses_other_bad_fields_naming_them(client, field, value):
    response = await client.post(f"{USERS}/", json=build_user_create_payload(**{field: value}))
    assert _error_fields(response) == {field}


@pytest.mark.integration
@pytest.mark.parametrize("missing", ["name", "username", "email", "password"])
async def test_sign_up_with_a_missing_field_is_422(client, missing):
    payload = build_user_create_payload()
    del payload[missing]
    response = await client.post(f"{USERS}/", json=payload)
    assert _error_fields(response) == {missing}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("is_superuser", True, id="is_superuser"),
        pytest.param("tier_id", 1, id="tier_id"),
        pytest.param("hashed_password", "x", id="hashed_password"),
    ],
)
async def test_sign_up_refuses_unknown_fields(client, field, value):
    payload = build_user_create_payload(**{field: value})

    response = await client.post(f"{USERS}/", json=payload)

    assert _error_fields(response) == {field}
    assert (await client.get(f"{USERS}/{payload['username']}")).status_code == 404


# --- public profile ------------------------------------------------------------------------------


@pytest.mark.integration
async def test_public_profile_shows_no_email(client, db_session):
    user = await create_user(db_session, username="dave")

    for path in (f"{USERS}/dave", f"{USERS}/dave/", f"{USERS}/DAVE"):
        response = await client.get(path)
        assert response.status_code == 200, path
        body = response.json()
        assert body["username"] == "dave"
        assert body["name"] == user["name"]
        assert "email" not in body
        assert user["email"] not in response.text
        assert not [key for key in body if "password" in key or "hash" in key]


@pytest.mark.integration
async def test_public_profile_of_unknown_user_is_404(client):
    response = await client.get(f"{USERS}/nobody-at-all")
    assert response.status_code == 404
    assert response.json()["detail"]


# --- own profile ---------------------------------------------------------------------------------


@pytest.mark.integration
async def test_patch_own_name(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(f"{USERS}/{user['username']}", json={"name": "  New Name  "})

    assert response.status_code == 200
    assert response.json()["name"] == "New Name"
    assert (await client.get(f"{USERS}/me")).json()["name"] == "New Name"


@pytest.mark.integration
async def test_patch_cannot_change_the_email(client, db_session):
    """The email changes only through the confirmed flow (POST /auth/email/change-request)."""
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(
        f"{USERS}/{user['username']}", json={"email": "fresh.address@example.org"}
    )

    assert _error_fields(response) == {"email"}
    assert "change-request" in response.json()["detail"][0]["msg"]
    assert (await client.get(f"{USERS}/me")).json()["email"] == user["email"]


@pytest.mark.integration
async def test_patch_own_username_moves_the_profile(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(f"{USERS}/{user['username']}", json={"username": "Renamed.One"})

    assert response.status_code == 200
    assert response.json()["username"] == "renamed.one"
    assert (await client.get(f"{USERS}/{user['username']}")).status_code == 404
    assert (await client.get(f"{USERS}/renamed.one")).status_code == 200
    # The session survives the rename and follows the user.
    assert (await client.get(f"{USERS}/me")).json()["username"] == "renamed.one"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("username", "me", id="reserved-username"),
        pytest.param("username", "x", id="short-username"),
        pytest.param("email", "nope", id="bad-email"),
        pytest.param("password", "short", id="weak-password"),
        pytest.param("is_superuser", True, id="unknown-field"),
    ],
)
async def test_patch_own_profile_validates_like_sign_up(client, db_session, field, value):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(f"{USERS}/{user['username']}", json={field: value})

    assert _error_fields(response) == {field}


@pytest.mark.integration
async def test_patch_own_username_to_a_taken_one_is_409(client, db_session):
    user = await create_user(db_session)
    taken = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(
        f"{USERS}/{user['username']}", json={"username": taken["username"].upper()}
    )

    assert response.status_code == 409
    assert "username" in response.json()["detail"].lower()


# --- password change -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("as_superuser", [False, True])
async def test_your_own_password_does_not_change_through_patch(
    app, client, superuser_client, db_session, as_superuser
):
    """One way to change your own password: POST /auth/change-password (it needs the current
    one, throttles guesses and tells your address)."""
    caller = superuser_client if as_superuser else client
    if not as_superuser:
        user = await create_user(db_session)
        await login(client, user["username"])
    me = (await caller.get(f"{USERS}/me")).json()

    response = await caller.patch(f"{USERS}/{me['username']}", json={"password": NEW_PASSWORD})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert "/auth/change-password" in error["msg"]


@pytest.mark.integration
async def test_patch_refuses_current_password_as_an_unknown_field(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(
        f"{USERS}/{user['username']}",
        json={"name": "X", "current_password": DEFAULT_PASSWORD},
    )

    assert _error_fields(response) == {"current_password"}


@pytest.mark.integration
async def test_superuser_resets_a_password_and_all_that_users_sessions_end(
    app, superuser_client, db_session
):
    user = await create_user(db_session)
    async with _new_client(app) as victim:
        await login(victim, user["username"])

        response = await superuser_client.patch(
            f"{USERS}/{user['username']}", json={"password": NEW_PASSWORD}
        )

        assert response.status_code == 200
        assert (await victim.get(f"{USERS}/me")).status_code == 401
        assert (await superuser_client.get(f"{USERS}/me")).status_code == 200
        await login(victim, user["username"], NEW_PASSWORD)


@pytest.mark.integration
async def test_patch_with_an_empty_body_changes_nothing(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.patch(f"{USERS}/{user['username']}", json={})

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["email"], body["username"]) == (
        user["name"],
        user["email"],
        user["username"],
    )


# --- soft delete ---------------------------------------------------------------------------------


@pytest.mark.integration
async def test_soft_delete_own_account(app, client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    async with _new_client(app) as other_session:
        await login(other_session, user["username"])

        response = await client.delete(f"{USERS}/{user['username']}")

        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(f"{USERS}/{user['username']}")).status_code == 404
        # Every session of the deleted user is over, the caller's included.
        assert (await other_session.get(f"{USERS}/me")).status_code == 401
        assert (await client.get(f"{USERS}/me")).status_code == 401
        # Login fails, by username and by email, with the same answer as a wrong password.
        for identifier in (user["username"], user["email"]):
            refused = await other_session.post(
                "/api/v1/auth/login", json={"username": identifier, "password": DEFAULT_PASSWORD}
            )
            assert refused.status_code == 401
            assert refused.json()["detail"] == "Incorrect username or password"


@pytest.mark.integration
async def test_superuser_soft_deletes_a_user_whose_session_then_fails(
    app, superuser_client, db_session
):
    user = await create_user(db_session)
    async with _new_client(app) as victim:
        await login(victim, user["username"])

        response = await superuser_client.delete(f"{USERS}/{user['username']}/")

        assert response.status_code == 204
        assert (await victim.get(f"{USERS}/me")).status_code == 401
        assert (
            await victim.patch(f"{USERS}/{user['username']}", json={"name": "Ghost"})
        ).status_code == 401
        listed = (await superuser_client.get(f"{USERS}/", params={"items_per_page": 100})).json()
        assert user["username"] not in {row["username"] for row in listed["data"]}
        again = await superuser_client.delete(f"{USERS}/{user['username']}")
        assert again.status_code == 404


@pytest.mark.integration
async def test_a_deleted_users_email_and_username_stay_reserved(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    assert (await client.delete(f"{USERS}/{user['username']}")).status_code == 204

    same_email = build_user_create_payload(email=user["email"])
    assert (await client.post(f"{USERS}/", json=same_email)).status_code == 409
    same_name = build_user_create_payload(username=user["username"])
    assert (await client.post(f"{USERS}/", json=same_name)).status_code == 409


# --- superuser list ------------------------------------------------------------------------------


@pytest.mark.integration
async def test_superuser_list_is_paginated(superuser_client, db_session):
    for _ in range(4):
        await create_user(db_session)
    everyone = (await superuser_client.get(f"{USERS}/", params={"items_per_page": 100})).json()
    total = everyone["total_count"]
    assert total >= 5  # four users and the superuser
    assert len(everyone["data"]) == total
    assert everyone["has_more"] is False

    seen: list[int] = []
    page = 1
    while True:
        response = await superuser_client.get(
            f"{USERS}", params={"page": page, "items_per_page": 2}
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"data", "total_count", "has_more", "page", "items_per_page"}
        assert body["page"] == page
        assert body["items_per_page"] == 2
        assert body["total_count"] == total
        assert len(body["data"]) == min(2, total - len(seen))
        seen.extend(row["id"] for row in body["data"])
        assert body["has_more"] is (len(seen) < total)
        for row in body["data"]:
            assert not [key for key in row if "password" in key or "hash" in key]
        if not body["has_more"]:
            break
        page += 1
    assert seen == sorted(set(seen))  # stable order, no row twice
    assert len(seen) == total

    beyond = (await superuser_client.get(f"{USERS}/", params={"page": page + 5})).json()
    assert beyond["data"] == []
    assert beyond["has_more"] is False
    assert beyond["total_count"] == total


@pytest.mark.integration
async def test_superuser_list_defaults_and_excludes_deleted_users(superuser_client, db_session):
    user = await create_user(db_session)
    before = (await superuser_client.get(f"{USERS}/")).json()
    assert before["page"] == 1
    assert before["items_per_page"] == settings.DEFAULT_PAGE_SIZE

    assert (await superuser_client.delete(f"{USERS}/{user['username']}")).status_code == 204

    after = (await superuser_client.get(f"{USERS}/")).json()
    assert after["total_count"] == before["total_count"] - 1
    assert user["id"] not in {row["id"] for row in after["data"]}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"items_per_page": settings.MAX_PAGE_SIZE + 1}, "items_per_page", id="cap"),
        pytest.param({"items_per_page": 0}, "items_per_page", id="zero-size"),
        pytest.param({"page": 0}, "page", id="page-zero"),
        pytest.param({"page": "first"}, "page", id="page-not-int"),
    ],
)
async def test_superuser_list_refuses_bad_paging(superuser_client, params, field):
    response = await superuser_client.get(f"{USERS}/", params=params)
    assert _error_fields(response) == {field}


@pytest.mark.integration
async def test_superuser_list_accepts_the_maximum_page_size(superuser_client):
    response = await superuser_client.get(
        f"{USERS}/", params={"items_per_page": settings.MAX_PAGE_SIZE}
    )
    assert response.status_code == 200
    assert response.json()["items_per_page"] == settings.MAX_PAGE_SIZE


# --- tier assignment -----------------------------------------------------------------------------


@pytest.mark.integration
async def test_superuser_moves_a_user_to_another_tier(app, superuser_client, db_session):
    user = await create_user(db_session)
    created = await superuser_client.post("/api/v1/tiers/", json={"name": "pro"})
    assert created.status_code == 201
    pro = created.json()
    assert user["tier_id"] != pro["id"]

    response = await superuser_client.patch(
        f"{USERS}/{user['username'].upper()}/tier/", json={"tier_name": "pro"}
    )

    assert response.status_code == 200
    assert response.json()["tier_id"] == pro["id"]
    assert response.json()["username"] == user["username"]
    async with _new_client(app) as own:
        await login(own, user["username"])
        assert (await own.get(f"{USERS}/me")).json()["tier_id"] == pro["id"]


@pytest.mark.integration
async def test_assigning_an_unknown_tier_is_404_and_changes_nothing(
    app, superuser_client, db_session
):
    user = await create_user(db_session)

    response = await superuser_client.patch(
        f"{USERS}/{user['username']}/tier", json={"tier_name": "no-such-tier"}
    )

    assert response.status_code == 404
    async with _new_client(app) as own:
        await login(own, user["username"])
        assert (await own.get(f"{USERS}/me")).json()["tier_id"] == user["tier_id"]


@pytest.mark.integration
async def test_assigning_a_tier_to_an_unknown_user_is_404(superuser_client):
    response = await superuser_client.patch(
        f"{USERS}/nobody-at-all/tier", json={"tier_name": settings.DEFAULT_TIER_NAME}
    )
    assert response.status_code == 404


@pytest.mark.integration
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing"),
        pytest.param({"tier_name": ""}, id="empty"),
        pytest.param({"tier_name": "pro", "tier_id": 1}, id="extra-field"),
    ],
)
async def test_assigning_a_tier_validates_the_body(superuser_client, db_session, body):
    user = await create_user(db_session)
    response = await superuser_client.patch(f"{USERS}/{user['username']}/tier", json=body)
    assert response.status_code == 422


# --- concurrency (real commits) ------------------------------------------------------------------


async def _race(client: AsyncClient, first: dict[str, Any], second: dict[str, Any]) -> list[Any]:
    return list(
        await asyncio.gather(
            client.post(f"{USERS}/", json=first), client.post(f"{USERS}/", json=second)
        )
    )


@pytest.mark.integration
async def test_concurrent_sign_ups_with_one_email_give_201_and_409(committed_client):
    for _ in range(4):
        email = f"race-{uuid.uuid4().hex[:12]}@example.com"
        first = build_user_create_payload(email=email)
        second = build_user_create_payload(email=email.upper())

        responses = await _race(committed_client, first, second)

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 409], [response.text for response in responses]
        loser = next(response for response in responses if response.status_code == 409)
        assert "email" in loser.json()["detail"].lower()
        # Exactly one account exists; the loser left nothing behind.
        profiles = [
            (await committed_client.get(f"{USERS}/{payload['username']}")).status_code
            for payload in (first, second)
        ]
        assert sorted(profiles) == [200, 404]


@pytest.mark.integration
async def test_concurrent_sign_ups_with_one_username_give_201_and_409(committed_client):
    for _ in range(4):
        username = f"racer{uuid.uuid4().hex[:10]}"
        first = build_user_create_payload(username=username)
        second = build_user_create_payload(username=username.upper())

        responses = await _race(committed_client, first, second)

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [201, 409], [response.text for response in responses]
        loser = next(response for response in responses if response.status_code == 409)
        assert "username" in loser.json()["detail"].lower()
