"""Login, logout and the server-side session lifecycle, seen from the HTTP side.

Every test goes through the app (`client`, `plain_client` or extra clients standing for other
browsers); the database is only touched directly to age a session (idle and absolute timeouts)
or to look at what the session store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient, Response
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.config import Environment, settings
from src.modules.auth.models import UserSession
from src.modules.user.models import User
from tests.helpers.csrf import browser
from tests.helpers.factories import create_user, login

BASE_URL = "http://test"
LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout/"
LOGOUT_ALL = "/api/v1/auth/logout-all"
AUTH_ME = "/api/v1/auth/me/"
SESSIONS = "/api/v1/auth/sessions"
USERS_ME = "/api/v1/users/me/"
SESSION = settings.SESSION_COOKIE_NAME
CSRF = settings.CSRF_COOKIE_NAME


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class SetCookie:
    """One parsed Set-Cookie header: name, value and its attributes (lower-cased keys)."""

    name: str
    value: str
    attributes: dict[str, str | bool] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return "secure" in self.attributes

    @property
    def httponly(self) -> bool:
        return "httponly" in self.attributes

    @property
    def samesite(self) -> str | None:
        value = self.attributes.get("samesite")
        return value.lower() if isinstance(value, str) else None


def set_cookies(response: Response, name: str) -> list[SetCookie]:
    """Every raw Set-Cookie header of `response` that sets the cookie `name`."""
    found = []
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        cookie_name, _, value = first.partition("=")
        if cookie_name.strip() != name:
            continue
        attributes: dict[str, str | bool] = {}
        for attribute in rest:
            key, has_value, attribute_value = attribute.partition("=")
            attributes[key.strip().lower()] = attribute_value.strip() if has_value else True
        found.append(SetCookie(cookie_name.strip(), value.strip().strip('"'), attributes))
    return found


def the_set_cookie(response: Response, name: str) -> SetCookie:
    cookies = set_cookies(response, name)
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    return cookies[0]


def session_token(response: Response) -> str:
    """The session token a login response hands out."""
    token = the_set_cookie(response, SESSION).value
    assert token
    return token


async def login_response(
    client: AsyncClient, username: str, password: str, **kwargs: Any
) -> Response:
    response = await client.post(LOGIN, json={"username": username, "password": password}, **kwargs)
    assert response.status_code == 200, response.text
    return response


async def status_with_token(app: Any, token: str) -> int:
    """Replay a session cookie value from a brand-new client: is it still a live session?"""
    async with browser(app, csrf_aware=False, cookies={SESSION: token}) as replay:
        return (await replay.get(USERS_ME)).status_code


async def current_session_id(client: AsyncClient) -> str:
    response = await client.get(AUTH_ME)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authenticated"] is True, body
    return body["session_id"]


async def age_session(db_session: AsyncSession, session_id: str, **values: datetime) -> None:
    """Move a session's timestamps directly in the database."""
    await db_session.execute(
        update(UserSession).where(UserSession.id == session_id).values(**values)
    )
    await db_session.commit()


async def last_seen_at(db_session: AsyncSession, session_id: str) -> datetime:
    value = (
        await db_session.execute(
            select(UserSession.last_seen_at).where(UserSession.id == session_id)
        )
    ).scalar_one()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- login -----------------------------------------------------------------------------------


@pytest.mark.integration
async def test_login_with_json_username(client, db_session):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["username"] == user["username"]
    assert body["user"]["email"] == user["email"]
    assert "hashed_password" not in body["user"]
    assert "password" not in body["user"]
    expires_at = parse_time(body["session_expires_at"])
    expected = now() + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)
    assert abs(expires_at - expected) < timedelta(minutes=1)
    assert session_token(response)

    me = await client.get(USERS_ME)
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "identifier",
    [
        pytest.param(lambda u: u["email"], id="email"),
        pytest.param(lambda u: u["email"].upper(), id="email-upper"),
        pytest.param(lambda u: u["email"].swapcase().title(), id="email-mixed-case"),
        pytest.param(lambda u: u["username"].upper(), id="username-upper"),
        pytest.param(lambda u: f"  {u['email']}  ", id="email-padded"),
    ],
)
async def test_login_identifier_is_username_or_email_in_any_case(client, db_session, identifier):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN, json={"username": identifier(user), "password": user["password"]}
    )

    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == user["id"]
    me = await client.get(USERS_ME)
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]


@pytest.mark.integration
@pytest.mark.parametrize("by", ["username", "email"])
async def test_login_with_form_data_like_the_openapi_authorize_button(client, db_session, by):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN,
        data={
            "grant_type": "password",
            "username": user[by],
            "password": user["password"],
            "scope": "",
            "client_id": "",
            "client_secret": "",
        },
    )

    assert response.status_code == 200, response.text
    assert response.request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert response.json()["user"]["username"] == user["username"]
    me = await client.get(USERS_ME)
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]


@pytest.mark.integration
async def test_wrong_password_and_unknown_user_get_the_same_401(client, db_session):
    user = await create_user(db_session)

    attempts = [
        {"username": user["username"], "password": "Wrong-password-1"},
        {"username": user["email"], "password": "Wrong-password-1"},
        {"username": "nobody_by_that_name", "password": user["password"]},
        {"username": "nobody@example.com", "password": user["password"]},
    ]
    responses = [await client.post(LOGIN, json=attempt) for attempt in attempts]
    form_response = await client.post(
        LOGIN, data={"username": user["username"], "password": "Wrong-password-1"}
    )

    for response in [*responses, form_response]:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == responses[0].json()
        assert set_cookies(response, SESSION) == []
    assert isinstance(responses[0].json()["detail"], str)
    assert (await client.get(USERS_ME)).status_code == 401


@pytest.mark.integration
@pytest.mark.parametrize(
    ("kind", "body", "missing"),
    [
        ("json", {"username": "someone"}, "password"),
        ("json", {"password": "Secret-pass-1"}, "username"),
        ("json", {"username": "", "password": "Secret-pass-1"}, "username"),
        ("form", {"username": "someone"}, "password"),
        ("form", {"password": "Secret-pass-1", "grant_type": "password"}, "username"),
    ],
)
async def test_login_missing_field_is_422_naming_it(client, kind, body, missing):
    if kind == "json":
        response = await client.post(LOGIN, json=body)
    else:
        response = await client.post(LOGIN, data=body)

    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list)
    assert any(error["loc"][-1] == missing for error in errors), errors
    # The rejected input is not echoed back (it may be a password).
    assert "Secret-pass-1" not in response.text


@pytest.mark.integration
@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[]", b"null", b'{"username": 5, "password": "x"}']
)
async def test_login_with_a_malformed_json_body_is_422(client, body):
    response = await client.post(
        LOGIN, content=body, headers={"content-type": "application/json; charset=utf-8"}
    )

    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


@pytest.mark.integration
async def test_soft_deleted_user_cannot_log_in(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    assert (await client.delete(f"/api/v1/users/{user['username']}")).status_code == 204
    unknown = await client.post(
        LOGIN, json={"username": "nobody_by_that_name", "password": user["password"]}
    )

    for identifier in [user["username"], user["email"]]:
        response = await client.post(
            LOGIN, json={"username": identifier, "password": user["password"]}
        )
        assert response.status_code == 401, response.text
        assert response.json() == unknown.json()


@pytest.mark.integration
async def test_login_rehashes_a_password_hashed_with_other_parameters(app, client, db_session):
    user = await create_user(db_session)
    old_hash = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=2048, parallelism=1),)).hash(
        user["password"]
    )
    await db_session.execute(
        update(User).where(User.id == user["id"]).values(hashed_password=old_hash)
    )
    await db_session.commit()

    await login(client, user["username"], user["password"])

    stored = (
        await db_session.execute(select(User.hashed_password).where(User.id == user["id"]))
    ).scalar_one()
    assert stored != old_hash
    assert stored.startswith("$argon2id$")
    # The new hash still accepts the same password.
    async with browser(app) as again:
        await login(again, user["username"], user["password"])


@pytest.mark.integration
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/octet-stream", None]
)
async def test_login_with_unsupported_content_type_is_415(client, db_session, content_type):
    user = await create_user(db_session)
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post(
        LOGIN,
        content=f"username={user['username']}&password={user['password']}".encode(),
        headers=headers,
    )

    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str)
    assert set_cookies(response, SESSION) == []


# --- cookie flags ----------------------------------------------------------------------------


@pytest.mark.integration
async def test_session_cookie_is_httponly_lax_and_not_secure_under_pytest(client, db_session):
    user = await create_user(db_session)

    response = await login_response(client, user["username"], user["password"])

    cookie = the_set_cookie(response, SESSION)
    assert cookie.httponly
    assert cookie.samesite == "lax"
    assert not cookie.secure
    assert cookie.attributes.get("path") == "/"
    # Without remember_me it is a browser-session cookie: no Max-Age, no Expires.
    assert "max-age" not in cookie.attributes
    assert "expires" not in cookie.attributes
    # The session token is 256 random bits: at least 43 characters of base64url.
    assert len(cookie.value) >= 43


@pytest.mark.integration
@pytest.mark.parametrize("as_form", [False, True])
async def test_remember_me_keeps_the_session_cookie_after_the_browser_closes(
    client, db_session, as_form
):
    user = await create_user(db_session)
    body = {"username": user["username"], "password": user["password"], "remember_me": "true"}

    if as_form:
        response = await client.post(LOGIN, data=body)
    else:
        response = await client.post(LOGIN, json=body | {"remember_me": True})

    assert response.status_code == 200, response.text
    cookie = the_set_cookie(response, SESSION)
    assert int(cookie.attributes["max-age"]) == settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS


@pytest.mark.integration
@pytest.mark.parametrize(
    ("environment", "cookie_secure", "expect_secure"),
    [
        (Environment.STAGING, None, True),
        (Environment.PRODUCTION, None, True),
        (Environment.DEVELOPMENT, None, True),
        (Environment.PYTEST, True, True),
        (Environment.LOCAL, None, False),
        (Environment.STAGING, False, False),
    ],
)
async def test_cookies_are_secure_outside_local_and_pytest(
    app, client, db_session, monkeypatch, environment, cookie_secure, expect_secure
):
    # Create the user first: the password hasher is chosen (and cached) by environment.
    user = await create_user(db_session)
    monkeypatch.setattr(settings, "ENVIRONMENT", environment)
    monkeypatch.setattr(settings, "COOKIE_SECURE", cookie_secure)

    response = await login_response(client, user["username"], user["password"])

    session_cookie = the_set_cookie(response, SESSION)
    assert session_cookie.secure is expect_secure
    assert session_cookie.httponly
    assert session_cookie.samesite == "lax"
    csrf_cookie = the_set_cookie(response, CSRF)
    assert csrf_cookie.secure is expect_secure

    async with browser(app, csrf_aware=False) as other:
        anonymous = await other.get(AUTH_ME)
    assert the_set_cookie(anonymous, CSRF).secure is expect_secure


# --- session fixation ------------------------------------------------------------------------


@pytest.mark.integration
async def test_every_login_issues_a_new_session_and_ends_the_previous_one(app, client, db_session):
    user = await create_user(db_session)

    tokens = []
    for _ in range(3):
        response = await login_response(client, user["username"], user["password"])
        tokens.append(session_token(response))
        assert (await client.get(USERS_ME)).status_code == 200

    assert len(set(tokens)) == 3
    assert await status_with_token(app, tokens[0]) == 401
    assert await status_with_token(app, tokens[1]) == 401
    assert await status_with_token(app, tokens[2]) == 200


@pytest.mark.integration
async def test_planted_session_cookie_does_not_survive_a_login(app, client, db_session):
    attacker = await create_user(db_session)
    victim = await create_user(db_session)
    planted = session_token(
        await login_response(client, attacker["username"], attacker["password"])
    )

    async with browser(app, cookies={SESSION: planted}) as victim_browser:
        assert (await victim_browser.get(USERS_ME)).json()["username"] == attacker["username"]
        response = await login_response(victim_browser, victim["username"], victim["password"])
    fresh = session_token(response)

    assert fresh != planted
    assert await status_with_token(app, planted) == 401
    async with browser(app, cookies={SESSION: fresh}) as victim_again:
        me = await victim_again.get(USERS_ME)
    assert me.status_code == 200
    assert me.json()["username"] == victim["username"]


@pytest.mark.integration
async def test_public_session_id_does_not_authenticate(app, client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_id = await current_session_id(client)

    assert await status_with_token(app, session_id) == 401


# --- logout ----------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/api/v1/auth/logout/", "/api/v1/auth/logout"])
async def test_logout_ends_the_session_on_the_server_without_a_csrf_header(
    app, plain_client, db_session, path
):
    user = await create_user(db_session)
    token = session_token(await login_response(plain_client, user["username"], user["password"]))
    assert (await plain_client.get(USERS_ME)).status_code == 200

    response = await plain_client.post(path)

    assert response.status_code == 204, response.text
    assert settings.CSRF_HEADER_NAME not in response.request.headers
    cleared = the_set_cookie(response, SESSION)
    assert cleared.value == "" or cleared.attributes.get("max-age") == "0"
    assert (await plain_client.get(USERS_ME)).status_code == 401
    # Replaying the old cookie value: the session is gone on the server, not just the cookie.
    assert await status_with_token(app, token) == 401


@pytest.mark.integration
async def test_logout_ends_only_this_browsers_session(app, client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    async with browser(app) as laptop:
        await login(laptop, user["username"], user["password"])

        assert (await client.post(LOGOUT)).status_code == 204

        assert (await client.get(USERS_ME)).status_code == 401
        assert (await laptop.get(USERS_ME)).status_code == 200


@pytest.mark.integration
async def test_logout_when_anonymous_is_204(plain_client):
    response = await plain_client.post(LOGOUT)

    assert response.status_code == 204
    assert (await plain_client.get(USERS_ME)).status_code == 401


@pytest.mark.integration
async def test_logout_all_ends_every_session_of_the_user(app, client, db_session):
    user = await create_user(db_session)
    other_user = await create_user(db_session)
    first = session_token(await login_response(client, user["username"], user["password"]))
    async with browser(app) as second, browser(app) as stranger:
        await login(second, user["username"], user["password"])
        await login(stranger, other_user["username"], other_user["password"])

        response = await client.post(LOGOUT_ALL)

        assert response.status_code == 204, response.text
        assert (await client.get(USERS_ME)).status_code == 401
        assert (await second.get(USERS_ME)).status_code == 401
        assert await status_with_token(app, first) == 401
        # Somebody else's sessions are untouched.
        assert (await stranger.get(USERS_ME)).status_code == 200


@pytest.mark.integration
async def test_logout_all_needs_a_session(client):
    assert (await client.post(LOGOUT_ALL)).status_code == 401


# --- listing and revoking sessions -----------------------------------------------------------


@pytest.mark.integration
async def test_list_sessions_shows_own_sessions_with_exactly_one_current(app, client, db_session):
    user = await create_user(db_session)
    other_user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    async with browser(app) as second, browser(app) as stranger:
        await login(second, user["username"], user["password"])
        await login(stranger, other_user["username"], other_user["password"])
        first_id = await current_session_id(client)
        second_id = await current_session_id(second)
        stranger_id = await current_session_id(stranger)

        response = await client.get(SESSIONS)
        from_second = await second.get(f"{SESSIONS}/")

    assert response.status_code == 200, response.text
    sessions = response.json()
    assert {entry["id"] for entry in sessions} == {first_id, second_id}
    assert stranger_id not in {entry["id"] for entry in sessions}
    assert [entry["id"] for entry in sessions if entry["current"] is True] == [first_id]
    for entry in sessions:
        assert "token" not in entry
        assert "token_hash" not in entry
        assert entry["user_agent"]
        assert parse_time(entry["created_at"]) <= parse_time(entry["last_seen_at"])
        assert parse_time(entry["expires_at"]) > now()
    assert from_second.status_code == 200
    assert [entry["id"] for entry in from_second.json() if entry["current"]] == [second_id]


@pytest.mark.integration
async def test_list_sessions_needs_a_session(client):
    assert (await client.get(SESSIONS)).status_code == 401


@pytest.mark.integration
async def test_revoke_another_own_session(app, client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    async with browser(app) as second:
        await login(second, user["username"], user["password"])
        second_id = await current_session_id(second)

        response = await client.delete(f"{SESSIONS}/{second_id}")

        assert response.status_code == 204, response.text
        assert (await second.get(USERS_ME)).status_code == 401
        assert (await client.get(USERS_ME)).status_code == 200
        remaining = (await client.get(SESSIONS)).json()
        assert [entry["id"] for entry in remaining] == [await current_session_id(client)]
        # Revoking it again: it no longer exists.
        assert (await client.delete(f"{SESSIONS}/{second_id}")).status_code == 404


@pytest.mark.integration
async def test_revoke_someone_elses_session_is_404_and_leaves_it_alive(app, client, db_session):
    user = await create_user(db_session)
    other_user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    async with browser(app) as stranger:
        await login(stranger, other_user["username"], other_user["password"])
        stranger_id = await current_session_id(stranger)

        response = await client.delete(f"{SESSIONS}/{stranger_id}")

        assert response.status_code == 404, response.text
        assert isinstance(response.json()["detail"], str)
        assert (await stranger.get(USERS_ME)).status_code == 200
        assert stranger_id in {entry["id"] for entry in (await stranger.get(SESSIONS)).json()}

    missing = await client.delete(f"{SESSIONS}/{'0' * 32}")
    assert missing.status_code == 404


@pytest.mark.integration
async def test_revoke_current_session_logs_this_browser_out(app, client, db_session):
    user = await create_user(db_session)
    token = session_token(await login_response(client, user["username"], user["password"]))
    session_id = await current_session_id(client)

    response = await client.delete(f"{SESSIONS}/{session_id}/")

    assert response.status_code == 204, response.text
    assert (await client.get(USERS_ME)).status_code == 401
    assert await status_with_token(app, token) == 401


# --- /auth/me --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/api/v1/auth/me/", "/api/v1/auth/me"])
async def test_auth_me_anonymous(plain_client, path):
    response = await plain_client.get(path)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authenticated"] is False
    assert body.get("user") is None
    assert body.get("session_id") is None


@pytest.mark.integration
async def test_auth_me_logged_in(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])

    response = await client.get(AUTH_ME)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["authenticated"] is True
    assert body["user"]["id"] == user["id"]
    assert body["user"]["username"] == user["username"]
    assert "hashed_password" not in body["user"]
    sessions = (await client.get(SESSIONS)).json()
    assert body["session_id"] in {entry["id"] for entry in sessions if entry["current"]}


# --- timeouts --------------------------------------------------------------------------------


@pytest.mark.integration
async def test_idle_timeout_ends_the_session(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_id = await current_session_id(client)

    idle = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
    await age_session(db_session, session_id, last_seen_at=now() - idle - timedelta(seconds=5))

    assert (await client.get(USERS_ME)).status_code == 401
    assert (await client.get(AUTH_ME)).json()["authenticated"] is False


@pytest.mark.integration
async def test_session_used_within_the_idle_window_stays_alive_and_is_refreshed(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_id = await current_session_id(client)

    idle = timedelta(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS)
    await age_session(db_session, session_id, last_seen_at=now() - idle + timedelta(minutes=2))

    assert (await client.get(USERS_ME)).status_code == 200
    # The request refreshed last_seen_at, so the session now has a full idle window again.
    assert now() - await last_seen_at(db_session, session_id) < timedelta(minutes=1)
    assert (await client.get(USERS_ME)).status_code == 200


@pytest.mark.integration
async def test_absolute_timeout_ends_an_active_session(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_id = await current_session_id(client)
    assert (await client.get(USERS_ME)).status_code == 200

    # Recently active, but past its absolute lifetime.
    await age_session(
        db_session,
        session_id,
        last_seen_at=now(),
        expires_at=now() - timedelta(seconds=1),
    )

    assert (await client.get(USERS_ME)).status_code == 401
    assert (await client.get(AUTH_ME)).json()["authenticated"] is False


@pytest.mark.integration
async def test_last_seen_is_refreshed_only_after_the_touch_interval(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    session_id = await current_session_id(client)
    interval = timedelta(seconds=settings.SESSION_TOUCH_INTERVAL_SECONDS)
    assert interval + timedelta(seconds=30) < timedelta(
        seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS
    )

    # Seen recently (within the touch interval): a request does not write last_seen_at.
    recent = now() - interval / 2
    await age_session(db_session, session_id, last_seen_at=recent)
    assert (await client.get(USERS_ME)).status_code == 200
    assert abs(await last_seen_at(db_session, session_id) - recent) < timedelta(milliseconds=1)

    # Seen longer ago than the touch interval: the request refreshes it to about now.
    stale = now() - interval - timedelta(seconds=30)
    await age_session(db_session, session_id, last_seen_at=stale)
    before = now()
    assert (await client.get(USERS_ME)).status_code == 200
    refreshed = await last_seen_at(db_session, session_id)
    assert refreshed >= before - timedelta(seconds=1)
    assert refreshed <= now() + timedelta(seconds=1)


# --- limits and refusals ---------------------------------------------------------------------


@pytest.mark.integration
async def test_max_sessions_per_user_evicts_the_oldest(app, client, db_session, monkeypatch):
    monkeypatch.setattr(settings, "SESSION_MAX_PER_USER", 2)
    user = await create_user(db_session)
    other_user = await create_user(db_session)
    async with browser(app) as second, browser(app) as third, browser(app) as stranger:
        await login(stranger, other_user["username"], other_user["password"])
        await login(client, user["username"], user["password"])
        await login(second, user["username"], user["password"])
        assert (await client.get(USERS_ME)).status_code == 200
        assert (await second.get(USERS_ME)).status_code == 200

        await login(third, user["username"], user["password"])

        assert (await client.get(USERS_ME)).status_code == 401
        assert (await second.get(USERS_ME)).status_code == 200
        assert (await third.get(USERS_ME)).status_code == 200
        assert len((await third.get(SESSIONS)).json()) == 2
        # Another user's session does not count towards this user's limit.
        assert (await stranger.get(USERS_ME)).status_code == 200


@pytest.mark.integration
async def test_cross_site_login_is_refused(client, db_session):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN,
        json={"username": user["username"], "password": user["password"]},
        headers={"Sec-Fetch-Site": "cross-site"},
    )

    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str)
    assert set_cookies(response, SESSION) == []
    assert (await client.get(USERS_ME)).status_code == 401


@pytest.mark.integration
@pytest.mark.parametrize("fetch_site", ["same-origin", "same-site", "none"])
async def test_same_origin_login_is_accepted(client, db_session, fetch_site):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN,
        json={"username": user["username"], "password": user["password"]},
        headers={"Sec-Fetch-Site": fetch_site},
    )

    assert response.status_code == 200, response.text
    assert (await client.get(USERS_ME)).status_code == 200


@pytest.mark.integration
async def test_session_token_is_stored_only_as_a_hash(client, db_session):
    user = await create_user(db_session)
    token = session_token(await login_response(client, user["username"], user["password"]))

    rows = (await db_session.execute(select(UserSession.__table__))).mappings().all()

    assert [row["user_id"] for row in rows].count(user["id"]) == 1
    for row in rows:
        for value in row.values():
            assert token not in str(value)
