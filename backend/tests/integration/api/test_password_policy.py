"""The password policy through the API: sign-up and `PATCH /users/{username}` refuse a password
with a 422 that names the broken rule, in one shape whichever layer refused it (the schema, or
the service that knows the stored username and email), and never echo the password."""

from typing import Any

import pytest
from httpx import AsyncClient

from tests.helpers.factories import (
    DEFAULT_PASSWORD,
    build_user_create_payload,
    create_user,
    login,
)

USERS = "/api/v1/users"
STRONG = "Lantern-Orbit-Mosaic-77"


def _policy_refusal(response: Any, password: str, field: str = "password") -> str:
    """The one error of a policy 422 (its message), after checking that nothing echoes the
    password."""
    assert response.status_code == 422, response.text
    assert password not in response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["type"] == "password_policy"
    assert set(error) == {"loc", "msg", "type"}  # no `input`, no `ctx`: nothing echoed
    return str(error["msg"])


def _local_part(email: str) -> str:
    return email.rpartition("@")[0]


# --- sign-up -------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("make_password", "message"),
    [
        pytest.param(lambda p: "Sh0rt!", "password: must be at least 8 characters", id="short"),
        pytest.param(
            lambda p: "baseball",
            "password: too common (found in a list of breached passwords)",
            id="common",
        ),
        pytest.param(
            lambda p: f"Zq7-{p['username'].upper()}-9x!",
            "password: must not contain the username",
            id="contains-username",
        ),
        pytest.param(
            lambda p: f"Zq7-{_local_part(p['email'])}-9x!",
            "password: must not contain the email address",
            id="contains-email",
        ),
        pytest.param(lambda p: "Summer2024!", "password: too easy to guess", id="weak"),
    ],
)
async def test_sign_up_refusal_names_the_rule_and_not_the_password(
    client: AsyncClient, make_password: Any, message: str
) -> None:
    payload = build_user_create_payload()
    payload["password"] = make_password(payload)

    response = await client.post(f"{USERS}/", json=payload)

    assert _policy_refusal(response, payload["password"]).startswith(message)


@pytest.mark.integration
async def test_sign_up_with_a_strong_password_passes(client: AsyncClient) -> None:
    payload = build_user_create_payload(password=STRONG)

    assert (await client.post(f"{USERS}/", json=payload)).status_code == 201
    await login(client, payload["username"], STRONG)


@pytest.mark.integration
async def test_a_password_refusal_comes_with_the_other_fields_errors(client: AsyncClient) -> None:
    payload = build_user_create_payload(username="x", password="baseball")

    response = await client.post(f"{USERS}/", json=payload)

    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {
        ("body", "username"),
        ("body", "password"),
    }
    assert "baseball" not in response.text


# --- password change -----------------------------------------------------------------------------


async def _assert_password_unchanged(client: AsyncClient, username: str) -> None:
    await client.post("/api/v1/auth/logout")
    await login(client, username, DEFAULT_PASSWORD)


CHANGE = "/api/v1/auth/change-password"


@pytest.mark.integration
async def test_a_new_password_containing_the_stored_username_is_422(client, db_session):
    """The payload carries no username: the service checks against the stored one."""
    user = await create_user(db_session)
    await login(client, user["username"])
    password = f"Zq7-{user['username']}-9x!"

    response = await client.post(
        CHANGE, json={"new_password": password, "current_password": DEFAULT_PASSWORD}
    )

    refusal = _policy_refusal(response, password, "new_password")
    assert refusal == "password: must not contain the username"
    await _assert_password_unchanged(client, user["username"])


@pytest.mark.integration
async def test_a_new_password_containing_the_stored_email_is_422(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    password = f"Zq7-{_local_part(user['email']).upper()}-9x!"

    response = await client.post(
        CHANGE, json={"new_password": password, "current_password": DEFAULT_PASSWORD}
    )

    assert _policy_refusal(response, password, "new_password").startswith(
        "password: must not contain the email address"
    )
    await _assert_password_unchanged(client, user["username"])


@pytest.mark.integration
async def test_a_patch_with_a_new_username_checks_the_password_against_it(
    superuser_client, db_session
):
    """Refused by the schema this time (the payload carries the username)."""
    user = await create_user(db_session)
    password = "Zq7-Kestrel.Nine-9x!"

    response = await superuser_client.patch(
        f"{USERS}/{user['username']}", json={"username": "kestrel.nine", "password": password}
    )

    assert _policy_refusal(response, password) == "password: must not contain the username"


@pytest.mark.integration
async def test_a_superuser_reset_is_checked_against_that_users_account(
    superuser_client, db_session
):
    user = await create_user(db_session)
    password = f"Zq7-{user['username']}-9x!"

    response = await superuser_client.patch(
        f"{USERS}/{user['username']}", json={"password": password}
    )

    assert _policy_refusal(response, password) == "password: must not contain the username"


@pytest.mark.integration
async def test_a_strong_new_password_is_accepted(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])

    response = await client.post(
        CHANGE, json={"new_password": STRONG, "current_password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 200, response.text
    await client.post("/api/v1/auth/logout")
    await login(client, user["username"], STRONG)
