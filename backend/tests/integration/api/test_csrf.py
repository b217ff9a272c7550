"""Double-submit CSRF protection, bound to the session, as the Testing page and the spec define it.

- Any response to a request without the `csrf_token` cookie sets it.
- An unsafe request authenticated by the session cookie must send `X-CSRF-Token` equal to the
  cookie, and the token must have been issued for that session; otherwise 403 JSON.
- Anonymous requests (sign-up, login) are not checked. `CSRF_ENABLED=false` turns it off.

Refusals are tested with `plain_client` or fresh plain clients, which send no header on their own.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from httpx import AsyncClient, Response

from src.infrastructure.config import settings
from tests.helpers.csrf import browser as any_browser
from tests.helpers.factories import build_user_create_payload, create_user, login

BASE_URL = "http://test"
LOGIN = "/api/v1/auth/login"
AUTH_ME = "/api/v1/auth/me/"
USERS_ME = "/api/v1/users/me/"
SESSIONS = "/api/v1/auth/sessions"
SESSION = settings.SESSION_COOKIE_NAME
CSRF = settings.CSRF_COOKIE_NAME
CSRF_HEADER = settings.CSRF_HEADER_NAME


# --- helpers ---------------------------------------------------------------------------------


def csrf_set_cookies(response: Response) -> list[dict[str, str | bool]]:
    """Every raw Set-Cookie header of `response` that sets `csrf_token`, parsed."""
    found = []
    for header in response.headers.get_list("set-cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        if name.strip() != CSRF:
            continue
        cookie: dict[str, str | bool] = {"value": value.strip().strip('"')}
        for attribute in rest:
            key, has_value, attribute_value = attribute.partition("=")
            cookie[key.strip().lower()] = attribute_value.strip() if has_value else True
        found.append(cookie)
    return found


def issued_csrf_token(response: Response) -> str:
    cookies = csrf_set_cookies(response)
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    token = cookies[0]["value"]
    assert isinstance(token, str)
    assert token
    return token


def issued_session_token(response: Response) -> str:
    token = response.cookies.get(SESSION)
    assert token, response.headers.get_list("set-cookie")
    return token


def browser(app: Any, **options: Any) -> AbstractAsyncContextManager[AsyncClient]:
    """A fresh client with exactly the given cookies (plain by default: no automatic header)."""
    return any_browser(app, **{"csrf_aware": False, **options})


async def plain_login(client: AsyncClient, user: dict[str, Any]) -> Response:
    """Log in without any CSRF header; return the response (it sets session and csrf cookies)."""
    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    assert CSRF_HEADER not in response.request.headers
    return response


def assert_csrf_refusal(response: Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "csrf" in detail.lower()


async def name_of(client: AsyncClient) -> str:
    response = await client.get(USERS_ME)
    assert response.status_code == 200, response.text
    return response.json()["name"]


# --- the Testing page's flow -----------------------------------------------------------------


@pytest.mark.integration
async def test_testing_page_flow(client, db_session):
    user = await create_user(db_session)

    # Hit a GET first so the server sets the CSRF cookie
    await client.get("/api/v1/auth/me/")  # any safe endpoint
    assert client.cookies["csrf_token"]

    await login(client, user["username"], user["password"])
    await client.get("/api/v1/auth/me/")
    csrf_token = client.cookies["csrf_token"]  # cookie name from your config
    response = await client.patch(
        f"/api/v1/users/{user['username']}",
        json={"name": "Renamed Through Csrf"},
        headers={"X-CSRF-Token": csrf_token},
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed Through Csrf"
    assert await name_of(client) == "Renamed Through Csrf"


@pytest.mark.integration
async def test_explicit_header_equal_to_the_cookie_passes_on_a_plain_client(
    plain_client, db_session
):
    user = await create_user(db_session)
    await plain_login(plain_client, user)

    await plain_client.get(AUTH_ME)
    csrf_token = plain_client.cookies[CSRF]
    response = await plain_client.patch(
        f"/api/v1/users/{user['username']}",
        json={"name": "Plain Renamed"},
        headers={CSRF_HEADER: csrf_token},
    )

    assert response.status_code == 200, response.text
    assert await name_of(plain_client) == "Plain Renamed"


# --- the cookie ------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected_status"),
    [
        ("GET", "/health", {}, 200),
        ("GET", "/api/v1/auth/me/", {}, 200),
        ("GET", "/api/v1/auth/me", {}, 200),
        ("GET", "/api/v1/users/me/", {}, 401),
        ("GET", "/api/v1/auth/sessions", {}, 401),
        ("GET", "/api/v1/no-such-endpoint/", {}, 404),
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/api/v1/users/nobody_here", {}, 404),
        ("POST", "/api/v1/users/", {"json": {}}, 422),
        ("POST", LOGIN, {"json": {"username": "nobody", "password": "Nope-123"}}, 401),
        ("POST", LOGIN, {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
    ],
)
async def test_any_response_to_a_request_without_the_cookie_sets_it(
    plain_client, method, path, kwargs, expected_status
):
    response = await plain_client.request(method, path, **kwargs)

    assert response.status_code == expected_status, response.text
    cookies = csrf_set_cookies(response)
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    cookie = cookies[0]
    assert cookie["value"]
    # Readable by the page's JavaScript (it echoes it in the header), and first-party only.
    assert "httponly" not in cookie
    assert str(cookie.get("samesite", "")).lower() == "lax"
    assert cookie.get("path") == "/"
    assert plain_client.cookies[CSRF] == cookie["value"]


@pytest.mark.integration
async def test_a_413_response_to_a_request_without_the_cookie_sets_it(plain_client):
    too_big = b"x" * (settings.MAX_REQUEST_BODY_BYTES + 1)

    response = await plain_client.post(
        "/api/v1/users/", content=too_big, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert len(csrf_set_cookies(response)) == 1, response.headers.get_list("set-cookie")


@pytest.mark.integration
async def test_a_request_that_has_the_cookie_gets_no_new_one(plain_client, db_session):
    first = await plain_client.get("/health")
    token = issued_csrf_token(first)

    for path in ["/health", AUTH_ME, USERS_ME, "/api/v1/no-such-endpoint"]:
        response = await plain_client.get(path)
        assert csrf_set_cookies(response) == [], (path, response.headers.get_list("set-cookie"))
    assert plain_client.cookies[CSRF] == token

    # Also once logged in: ordinary requests keep the token login issued.
    user = await create_user(db_session)
    login_token = issued_csrf_token(await plain_login(plain_client, user))
    for path in [AUTH_ME, USERS_ME, SESSIONS]:
        response = await plain_client.get(path)
        assert response.status_code == 200, response.text
        assert csrf_set_cookies(response) == []
    assert plain_client.cookies[CSRF] == login_token


@pytest.mark.integration
async def test_cookie_set_for_a_logged_in_browser_is_bound_to_its_session(
    app, plain_client, db_session
):
    user = await create_user(db_session)
    session_token = issued_session_token(await plain_login(plain_client, user))

    # The same session in a browser that has lost its csrf_token cookie.
    async with browser(app, cookies={SESSION: session_token}) as other:
        response = await other.get(USERS_ME)
        assert response.status_code == 200
        token = issued_csrf_token(response)

        patched = await other.patch(
            f"/api/v1/users/{user['username']}",
            json={"name": "Bound Token"},
            headers={CSRF_HEADER: token},
        )

    assert patched.status_code == 200, patched.text
    assert await name_of(plain_client) == "Bound Token"


# --- refusals --------------------------------------------------------------------------------


async def _unsafe_requests(
    client: AsyncClient, user: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """State-changing requests a logged-in user may make (when CSRF passes)."""
    sessions = (await client.get(SESSIONS)).json()
    return [
        ("PATCH", f"/api/v1/users/{user['username']}", {"json": {"name": "Forged Name"}}),
        ("POST", "/api/v1/auth/logout-all", {}),
        ("DELETE", f"/api/v1/auth/sessions/{sessions[0]['id']}", {}),
        ("DELETE", f"/api/v1/users/{user['username']}", {}),
    ]


@pytest.mark.integration
async def test_unsafe_authenticated_request_without_the_header_is_403(plain_client, db_session):
    user = await create_user(db_session)
    await plain_login(plain_client, user)
    assert plain_client.cookies[CSRF]

    for method, path, kwargs in await _unsafe_requests(plain_client, user):
        response = await plain_client.request(method, path, **kwargs)
        assert CSRF_HEADER not in response.request.headers
        assert_csrf_refusal(response)

    # Nothing happened: still logged in, same name, account and session still there.
    assert await name_of(plain_client) == user["name"]
    assert len((await plain_client.get(SESSIONS)).json()) == 1


@pytest.mark.integration
@pytest.mark.parametrize(
    "header",
    [
        pytest.param(lambda token: "wrong", id="garbage"),
        pytest.param(lambda token: "", id="empty"),
        pytest.param(lambda token: token + "x", id="cookie-plus-one-char"),
        pytest.param(lambda token: token.upper(), id="cookie-upper-cased"),
    ],
)
async def test_header_different_from_the_cookie_is_403(plain_client, db_session, header):
    user = await create_user(db_session)
    token = issued_csrf_token(await plain_login(plain_client, user))

    for method, path, kwargs in await _unsafe_requests(plain_client, user):
        response = await plain_client.request(
            method, path, headers={CSRF_HEADER: header(token)}, **kwargs
        )
        assert_csrf_refusal(response)
    assert await name_of(plain_client) == user["name"]


@pytest.mark.integration
async def test_header_without_the_cookie_is_403(app, plain_client, db_session):
    user = await create_user(db_session)
    response = await plain_login(plain_client, user)
    session_token = issued_session_token(response)
    csrf_token = issued_csrf_token(response)

    # A valid token for this session in the header, but no csrf_token cookie sent.
    async with browser(app, cookies={SESSION: session_token}) as other:
        refused = await other.patch(
            f"/api/v1/users/{user['username']}",
            json={"name": "Forged Name"},
            headers={CSRF_HEADER: csrf_token},
        )

    assert_csrf_refusal(refused)
    assert await name_of(plain_client) == user["name"]


@pytest.mark.integration
async def test_token_not_issued_by_the_server_is_403_even_when_header_equals_cookie(
    app, plain_client, db_session
):
    user = await create_user(db_session)
    session_token = issued_session_token(await plain_login(plain_client, user))

    for forged in ["forged", "abc.def", "a" * 24 + "." + "0" * 64]:
        async with browser(app, cookies={SESSION: session_token, CSRF: forged}) as other:
            response = await other.patch(
                f"/api/v1/users/{user['username']}",
                json={"name": "Forged Name"},
                headers={CSRF_HEADER: forged},
            )
        assert_csrf_refusal(response)
    assert await name_of(plain_client) == user["name"]


@pytest.mark.integration
async def test_token_issued_before_login_is_refused_after_login(app, plain_client, db_session):
    user = await create_user(db_session)
    anonymous_token = issued_csrf_token(await plain_client.get(AUTH_ME))
    response = await plain_login(plain_client, user)
    session_token = issued_session_token(response)
    login_token = issued_csrf_token(response)
    assert login_token != anonymous_token

    async with browser(app, cookies={SESSION: session_token, CSRF: anonymous_token}) as stale:
        refused = await stale.patch(
            f"/api/v1/users/{user['username']}",
            json={"name": "Forged Name"},
            headers={CSRF_HEADER: anonymous_token},
        )
    assert_csrf_refusal(refused)

    async with browser(app, cookies={SESSION: session_token, CSRF: login_token}) as fresh:
        accepted = await fresh.patch(
            f"/api/v1/users/{user['username']}",
            json={"name": "Right Token"},
            headers={CSRF_HEADER: login_token},
        )
    assert accepted.status_code == 200, accepted.text


@pytest.mark.integration
async def test_token_issued_for_another_session_is_refused(app, plain_client, db_session):
    user = await create_user(db_session)
    other_user = await create_user(db_session)
    session_token = issued_session_token(await plain_login(plain_client, user))
    async with browser(app) as stranger, browser(app) as second_device:
        strangers_token = issued_csrf_token(await plain_login(stranger, other_user))
        # Even another session of the same user has its own tokens.
        second_device_token = issued_csrf_token(await plain_login(second_device, user))

    for token in [strangers_token, second_device_token]:
        async with browser(app, cookies={SESSION: session_token, CSRF: token}) as attacker:
            response = await attacker.patch(
                f"/api/v1/users/{user['username']}",
                json={"name": "Forged Name"},
                headers={CSRF_HEADER: token},
            )
        assert_csrf_refusal(response)
    assert await name_of(plain_client) == user["name"]


@pytest.mark.integration
async def test_safe_methods_need_no_header(plain_client, db_session):
    user = await create_user(db_session)
    await plain_login(plain_client, user)

    for path in [USERS_ME, AUTH_ME, SESSIONS, f"/api/v1/users/{user['username']}"]:
        response = await plain_client.get(path)
        assert response.status_code == 200, (path, response.text)


# --- what is not checked ---------------------------------------------------------------------


@pytest.mark.integration
async def test_anonymous_sign_up_and_login_need_no_header(app, plain_client):
    # `plain_client` keeps the app on the test transaction; the fresh clients share it.
    payload = build_user_create_payload()
    async with browser(app) as fresh:
        # No cookies at all, no header.
        signed_up = await fresh.post("/api/v1/users/", json=payload)
        assert signed_up.status_code == 201, signed_up.text
        assert CSRF_HEADER not in signed_up.request.headers

    async with browser(app) as fresh:
        logged_in = await fresh.post(
            LOGIN, json={"username": payload["username"], "password": payload["password"]}
        )
        assert logged_in.status_code == 200, logged_in.text
        assert CSRF_HEADER not in logged_in.request.headers
        assert (await fresh.get(USERS_ME)).json()["username"] == payload["username"]

    # With a csrf_token cookie in the jar (from an earlier page), still no header needed.
    async with browser(app) as fresh:
        await fresh.get(AUTH_ME)
        assert fresh.cookies[CSRF]
        form_login = await fresh.post(
            LOGIN, data={"username": payload["email"], "password": payload["password"]}
        )
        assert form_login.status_code == 200, form_login.text


@pytest.mark.integration
async def test_stale_session_cookie_does_not_make_sign_up_need_a_header(app, plain_client):
    async with browser(app, cookies={SESSION: "not-a-live-session"}) as fresh:
        response = await fresh.post("/api/v1/users/", json=build_user_create_payload())

    assert response.status_code == 201, response.text


@pytest.mark.integration
async def test_csrf_disabled_lets_the_request_through(plain_client, db_session, monkeypatch):
    user = await create_user(db_session)
    await plain_login(plain_client, user)
    monkeypatch.setattr(settings, "CSRF_ENABLED", False)

    response = await plain_client.patch(
        f"/api/v1/users/{user['username']}", json={"name": "No Csrf Needed"}
    )

    assert CSRF_HEADER not in response.request.headers
    assert response.status_code == 200, response.text
    assert await name_of(plain_client) == "No Csrf Needed"


@pytest.mark.integration
async def test_csrf_is_enabled_by_default():
    assert settings.CSRF_ENABLED is True


# --- login rotates the token -----------------------------------------------------------------


@pytest.mark.integration
async def test_login_sets_a_fresh_token_so_the_csrf_aware_client_works_at_once(client, db_session):
    user = await create_user(db_session)
    anonymous_token = issued_csrf_token(await client.get(AUTH_ME))

    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    assert response.status_code == 200, response.text
    login_token = issued_csrf_token(response)
    assert login_token != anonymous_token
    assert client.cookies[CSRF] == login_token
    # No GET in between: the very next unsafe request carries the new token and passes.
    patched = await client.patch(
        f"/api/v1/users/{user['username']}", json={"name": "Right After Login"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.request.headers[CSRF_HEADER] == login_token


@pytest.mark.integration
async def test_relogin_as_another_user_rotates_the_token(client, db_session):
    first = await create_user(db_session)
    second = await create_user(db_session)
    await login(client, first["username"], first["password"])
    first_token = client.cookies[CSRF]

    await login(client, second["username"], second["password"])

    assert client.cookies[CSRF] != first_token
    refused = await client.patch(
        f"/api/v1/users/{second['username']}",
        json={"name": "Old Token"},
        headers={CSRF_HEADER: first_token},
    )
    assert_csrf_refusal(refused)
    accepted = await client.patch(f"/api/v1/users/{second['username']}", json={"name": "New Token"})
    assert accepted.status_code == 200, accepted.text
