"""OAuth sign-in end to end: the app, configured for Google and GitHub, against a fake
provider served in-process (`tests/helpers/fake_oauth.py`), through real requests, real
commits and the app's own database session (the callback is a GET that writes).

A "browser" is an httpx client on the app; the provider's hop (the authorize endpoint, which
consents at once and redirects back) is played by a client on the fake provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import httpx2
import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from src.infrastructure.auth.cookies import OAUTH_FLOW_COOKIE_NAME, OAUTH_FLOW_COOKIE_PATH
from src.infrastructure.config import settings
from src.modules.auth.models import UserSession
from src.modules.auth.oauth import providers
from src.modules.auth.oauth.models import OAuthAccount, OAuthUsedState
from src.modules.user.models import User
from src.modules.user.service import UserService
from tests.helpers.csrf import CSRFAwareClient, browser
from tests.helpers.factories import DEFAULT_PASSWORD, build_user_create_payload
from tests.helpers.fake_oauth import ORIGIN, Account, FakeProvider, s256, settings_for

pytestmark = pytest.mark.integration

OAUTH = "/api/v1/auth/oauth"
FRONTEND = "https://app.example.com"
BASE_URL = "http://test"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(account=Account(subject="g-1001", email="Ada@Example.com"))


@pytest.fixture
def app(app: Any, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh app built with both providers configured against the fake (the suite's shared
    app has none, so it has no OAuth routes)."""
    from src.interfaces.main import create_app

    for name, value in (settings_for("google", "github") | {"FRONTEND_URL": FRONTEND}).items():
        monkeypatch.setattr(settings, name, value)
    monkeypatch.setattr(providers, "transport", httpx2.ASGITransport(app=fake.app))
    return create_app()


@pytest_asyncio.fixture
async def web(app: Any, clean_tables: None) -> AsyncIterator[CSRFAwareClient]:
    """A browser on the app: real commits through the app's own sessions, tables emptied
    afterwards."""
    async with CSRFAwareClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield c


@pytest_asyncio.fixture
async def at_provider(fake: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    """The browser's visits to the provider."""
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


# --- helpers -------------------------------------------------------------------------------


async def start(web: httpx.AsyncClient, provider: str, **params: str) -> httpx.Response:
    response = await web.get(f"{OAUTH}/{provider}", params=params)
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(ORIGIN)
    return response


async def consent(at_provider: httpx.AsyncClient, started: httpx.Response) -> str:
    """The provider's answer: the callback URL it sends the browser back to."""
    response = await at_provider.get(started.headers["location"])
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def sign_in(
    web: httpx.AsyncClient, at_provider: httpx.AsyncClient, provider: str = "google", **params: str
) -> httpx.Response:
    """The whole round trip; the callback's response."""
    callback = await consent(at_provider, await start(web, provider, **params))
    return await web.get(callback)


def failure(response: httpx.Response) -> str | None:
    """The `error` a failed sign-in sends the browser to /login with (None: no failure)."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    if location.path != "/login":
        return None
    return parse_qs(location.query)["error"][0]


async def count(engine: AsyncEngine, model: Any) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(model)) or 0)


async def links(engine: AsyncEngine) -> list[tuple[str, str, int, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                OAuthAccount.provider,
                OAuthAccount.subject,
                OAuthAccount.user_id,
                OAuthAccount.email,
            ).order_by(OAuthAccount.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def password_user(engine: AsyncEngine, *, email: str, verified: bool) -> dict[str, Any]:
    """A user who signed up with a password (committed)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    payload = build_user_create_payload(email=email)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        user = await UserService().create(payload=payload, db=db)
        await db.execute(update(User).where(User.id == user["id"]).values(is_verified=verified))
        await db.commit()
    return {**user, "password": payload["password"]}


# --- the round trip ------------------------------------------------------------------------


async def test_a_round_trip_signs_a_new_user_in(web, at_provider, fake, db_engine):
    started = await start(web, "google", redirect_to="/dashboard?tab=2")

    # The authorization request: the code flow, a state, an S256 PKCE challenge.
    request = parse_qs(urlsplit(started.headers["location"]).query)
    assert request["client_id"] == ["google-client-id"]
    assert request["response_type"] == ["code"]
    assert request["code_challenge_method"] == ["S256"]
    assert request["redirect_uri"] == [f"{BASE_URL}{OAUTH}/google/callback"]
    assert set(request["scope"][0].split()) == {"openid", "email", "profile"}
    assert len(request["state"][0]) >= 43
    # The flow is bound to this browser by a short-lived, HttpOnly cookie on the OAuth path.
    flow_cookie = next(
        c for c in started.headers.get_list("set-cookie") if c.startswith(OAUTH_FLOW_COOKIE_NAME)
    ).lower()
    assert "httponly" in flow_cookie
    assert f"path={OAUTH_FLOW_COOKIE_PATH}" in flow_cookie
    assert "samesite=lax" in flow_cookie
    assert "max-age=600" in flow_cookie

    response = await web.get(await consent(at_provider, started))

    assert response.status_code == 303
    assert response.headers["location"] == f"{FRONTEND}/dashboard?tab=2"
    assert web.cookies.get(settings.SESSION_COOKIE_NAME)
    assert web.cookies.get(settings.DEVICE_COOKIE_NAME)
    assert web.cookies.get(OAUTH_FLOW_COOKIE_NAME) is None  # cleared
    me = await web.get("/api/v1/users/me")
    assert me.status_code == 200, me.text
    user = me.json()
    assert user["email"] == "ada@example.com"
    assert user["is_verified"] is True
    assert user["username"] == "ada"
    assert user["name"] == "Ada Lovelace"
    assert user["tier_id"] is not None  # the default tier, as on sign-up
    assert await links(db_engine) == [("google", "g-1001", user["id"], "ada@example.com")]

    # The provider checked PKCE: the verifier sent at the exchange hashes to the challenge.
    (exchange,) = fake.token_requests
    assert s256(exchange["code_verifier"]) == request["code_challenge"][0]
    assert fake.refusals == []

    # The CSRF cookie is bound to the new session: an unsafe request with it passes.
    assert (await web.post("/api/v1/auth/logout")).status_code == 204


async def test_an_oauth_user_has_no_usable_password(app, web, at_provider, db_engine):
    await sign_in(web, at_provider)
    async with db_engine.connect() as connection:
        hashed = await connection.scalar(select(User.hashed_password))
    assert hashed.startswith("$argon2")  # an ordinary hash of a secret nobody knows
    async with browser(app) as other:
        for guess in ("x", "ada", DEFAULT_PASSWORD):
            login = await other.post(
                "/api/v1/auth/login", json={"username": "ada", "password": guess}
            )
            assert login.status_code == 401


async def test_signing_in_again_signs_in_the_same_user(app, web, at_provider, db_engine):
    first = await sign_in(web, at_provider)
    async with browser(app) as second_browser:
        second = await sign_in(second_browser, at_provider)
        me = (await second_browser.get("/api/v1/users/me")).json()

    assert failure(first) is None
    assert failure(second) is None
    assert await count(db_engine, User) == 1
    assert await links(db_engine) == [("google", "g-1001", me["id"], "ada@example.com")]


async def test_github_signs_a_new_user_in_with_its_login_as_username(
    web, at_provider, fake, db_engine
):
    fake.account = Account(subject="583231", email="octo@example.com", login="Octo-Cat", name="")

    response = await sign_in(web, at_provider, "github")

    assert failure(response) is None
    me = (await web.get("/api/v1/users/me")).json()
    assert me["username"] == "octo-cat"
    assert me["email"] == "octo@example.com"
    assert me["is_verified"] is True
    assert me["name"] == "Octo-Cat"
    assert await links(db_engine) == [("github", "583231", me["id"], "octo@example.com")]


async def test_a_verified_email_links_to_the_user_who_has_it(app, web, at_provider, db_engine):
    owner = await password_user(db_engine, email="ada@example.com", verified=True)

    response = await sign_in(web, at_provider)

    assert failure(response) is None
    me = (await web.get("/api/v1/users/me")).json()
    assert me["id"] == owner["id"]
    assert await count(db_engine, User) == 1
    assert await links(db_engine) == [("google", "g-1001", owner["id"], "ada@example.com")]
    # A verified owner keeps their password.
    async with browser(app) as other:
        login = await other.post(
            "/api/v1/auth/login", json={"username": owner["email"], "password": owner["password"]}
        )
    assert login.status_code == 200


async def test_an_unverified_pre_registration_is_taken_over_by_the_provider_account(
    app, web, at_provider, db_engine
):
    """Someone registered the address with a password but never proved they own it (maybe an
    attacker, before the owner arrived): the owner signing in through the provider gets the
    account, and the squatter's password and sessions stop working."""
    squatter = await password_user(db_engine, email="ada@example.com", verified=False)
    async with browser(app) as squatter_browser:
        login = await squatter_browser.post(
            "/api/v1/auth/login",
            json={"username": squatter["username"], "password": squatter["password"]},
        )
        assert login.status_code == 200

        response = await sign_in(web, at_provider)

        assert failure(response) is None
        me = (await web.get("/api/v1/users/me")).json()
        assert me["id"] == squatter["id"]
        assert me["is_verified"] is True
        assert (await squatter_browser.get("/api/v1/users/me")).status_code == 401
        again = await squatter_browser.post(
            "/api/v1/auth/login",
            json={"username": squatter["username"], "password": squatter["password"]},
        )
        assert again.status_code == 401


@pytest.mark.parametrize(("remember_me", "persistent"), [("true", True), ("false", False)])
async def test_remember_me_decides_whether_the_session_cookie_outlives_the_browser(
    web, at_provider, remember_me, persistent
):
    response = await sign_in(web, at_provider, remember_me=remember_me)

    session_cookie = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith(f"{settings.SESSION_COOKIE_NAME}=")
    ).lower()
    assert ("max-age=" in session_cookie) is persistent


# --- refusals ------------------------------------------------------------------------------


async def test_a_second_provider_with_the_same_unverified_email_is_refused(
    app, web, at_provider, fake, db_engine
):
    assert failure(await sign_in(web, at_provider)) is None  # Google: ada@example.com
    user_id = (await web.get("/api/v1/users/me")).json()["id"]
    before = (await count(db_engine, User), await links(db_engine))
    sessions = await count(db_engine, UserSession)
    fake.account = Account(
        subject="4242", email="ada@example.com", email_verified=False, login="not-ada"
    )

    async with browser(app) as attacker:
        response = await sign_in(attacker, at_provider, "github")

        assert failure(response) == "email_unverified"
        assert settings.SESSION_COOKIE_NAME not in attacker.cookies
        assert (await attacker.get("/api/v1/users/me")).status_code == 401
    # Nothing written: no user, no link, no session.
    assert (await count(db_engine, User), await links(db_engine)) == before
    assert await count(db_engine, UserSession) == sessions
    assert before[1][0][2] == user_id


async def test_an_unverified_email_creates_no_account(web, at_provider, fake, db_engine):
    fake.account = Account(subject="g-7", email="new@example.com", email_verified=False)

    assert failure(await sign_in(web, at_provider)) == "email_unverified"
    assert await count(db_engine, User) == 0
    assert await count(db_engine, OAuthAccount) == 0


async def test_a_state_that_does_not_match_is_refused(web, at_provider, fake, db_engine):
    callback = urlsplit(await consent(at_provider, await start(web, "google")))
    query = parse_qs(callback.query)
    forged = urlencode({"code": query["code"][0], "state": query["state"][0][:-2] + "xx"})

    response = await web.get(f"{callback.path}?{forged}")

    assert failure(response) == "invalid_state"
    assert fake.token_requests == []  # refused before any code exchange
    assert await count(db_engine, User) == 0


async def test_a_callback_opened_in_another_browser_is_refused(app, web, at_provider, fake):
    """Login CSRF: a callback URL (with a valid code and state) reaching a browser that did not
    start that sign-in is refused."""
    callback = await consent(at_provider, await start(web, "google"))

    async with browser(app) as victim:
        response = await victim.get(callback)
        assert failure(response) == "invalid_state"
        assert settings.SESSION_COOKIE_NAME not in victim.cookies
    assert fake.token_requests == []


async def test_a_replayed_callback_is_refused(app, web, at_provider, fake, db_engine):
    started = await start(web, "google")
    flow = web.cookies.get(OAUTH_FLOW_COOKIE_NAME)
    callback = await consent(at_provider, started)
    assert failure(await web.get(callback)) is None
    sessions = await count(db_engine, UserSession)

    # The same callback again, with the flow cookie too (say, copied from the browser).
    async with browser(app, cookies={OAUTH_FLOW_COOKIE_NAME: flow}) as replay:
        response = await replay.get(callback)
        assert failure(response) == "invalid_state"
        assert settings.SESSION_COOKIE_NAME not in replay.cookies
    assert len(fake.token_requests) == 1  # the code was never presented again
    assert await count(db_engine, UserSession) == sessions
    assert await count(db_engine, OAuthUsedState) == 1


async def test_a_code_from_another_flow_fails_the_pkce_check(app, web, at_provider, fake):
    """An authorization code intercepted from one sign-in and injected into another (with that
    browser's own valid state) is refused by the provider: the verifier does not match."""
    async with browser(app) as attacker:
        stolen = parse_qs(urlsplit(await consent(at_provider, await start(web, "google"))).query)
        theirs = parse_qs(
            urlsplit(await consent(at_provider, await start(attacker, "google"))).query
        )
        injected = urlencode({"code": stolen["code"][0], "state": theirs["state"][0]})

        response = await attacker.get(f"{OAUTH}/google/callback?{injected}")

        assert failure(response) == "provider_error"
        assert settings.SESSION_COOKIE_NAME not in attacker.cookies
    assert fake.refusals == ["PKCE verifier mismatch"]


async def test_a_denied_consent_is_reported(web, at_provider, fake, db_engine):
    fake.deny = True
    assert failure(await sign_in(web, at_provider)) == "access_denied"
    assert await count(db_engine, User) == 0


async def test_a_failing_provider_is_reported(web, at_provider, fake, db_engine):
    fake.fail_token_endpoint = True
    assert failure(await sign_in(web, at_provider, "github")) == "provider_error"
    assert await count(db_engine, User) == 0


async def test_a_deleted_user_cannot_sign_in_through_a_linked_identity(
    app, web, at_provider, db_engine
):
    await sign_in(web, at_provider)
    async with db_engine.begin() as connection:
        await connection.execute(update(User).values(is_deleted=True))

    async with browser(app) as other:
        assert failure(await sign_in(other, at_provider)) == "account_unavailable"


async def test_a_callback_for_another_provider_than_the_flow_is_refused(web, at_provider, fake):
    callback = await consent(at_provider, await start(web, "github"))

    response = await web.get(callback.replace("/oauth/github/", "/oauth/google/"))

    assert failure(response) == "invalid_state"
    assert fake.token_requests == []


async def test_a_second_identity_at_the_same_provider_is_not_linked(
    app, web, at_provider, fake, db_engine
):
    """The address's user already has a Google identity: another Google account claiming the
    same address (a recycled address, say) does not get in."""
    assert failure(await sign_in(web, at_provider)) is None
    fake.account = Account(subject="g-2002", email="ada@example.com")

    async with browser(app) as other:
        assert failure(await sign_in(other, at_provider)) == "account_conflict"
    assert len(await links(db_engine)) == 1


async def test_the_address_of_a_deleted_user_is_not_reused(web, at_provider, db_engine):
    owner = await password_user(db_engine, email="ada@example.com", verified=True)
    async with db_engine.begin() as connection:
        await connection.execute(update(User).where(User.id == owner["id"]).values(is_deleted=True))

    assert failure(await sign_in(web, at_provider)) == "account_unavailable"
    assert await count(db_engine, User) == 1
    assert await count(db_engine, OAuthAccount) == 0


async def test_an_invalid_address_from_the_provider_is_a_provider_error(
    web, at_provider, fake, db_engine
):
    fake.account = Account(subject="g-9", email="not-an-address")

    assert failure(await sign_in(web, at_provider)) == "provider_error"
    assert await count(db_engine, User) == 0


async def test_concurrent_first_sign_ins_make_one_user(app, at_provider, db_engine, clean_tables):
    """Two browsers finishing the first sign-in of the same identity at once: one user, one
    link; the loser of a race is refused with account_conflict, never a 500."""
    async with browser(app) as one, browser(app) as two:
        callbacks = [await consent(at_provider, await start(b, "google")) for b in (one, two)]
        responses = await asyncio.gather(one.get(callbacks[0]), two.get(callbacks[1]))

    assert {failure(r) for r in responses} <= {None, "account_conflict"}
    assert None in {failure(r) for r in responses}
    assert await count(db_engine, User) == 1
    assert len(await links(db_engine)) == 1


# --- redirect_to -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redirect_to", "lands_on"),
    [
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("evil.example/path", "/"),
        ("/settings/profile", "/settings/profile"),
    ],
)
async def test_redirect_to_is_limited_to_same_origin_paths(web, at_provider, redirect_to, lands_on):
    response = await sign_in(web, at_provider, redirect_to=redirect_to)

    assert failure(response) is None
    assert response.headers["location"] == FRONTEND + lands_on


# --- mounting ------------------------------------------------------------------------------


async def test_no_oauth_routes_without_a_configured_provider():
    """The suite's shared app is built with no provider configured."""
    from src.interfaces.main import app as shared_app

    assert not [r for r in shared_app.routes if "/oauth" in getattr(r, "path", "")]
    async with browser(shared_app) as web:
        assert (await web.get(f"{OAUTH}/google")).status_code == 404
        assert (await web.get(f"{OAUTH}/google/callback?code=x&state=y")).status_code == 404


async def test_only_configured_providers_are_offered(monkeypatch, fake):
    from src.interfaces.main import create_app

    for name, value in settings_for("github").items():
        monkeypatch.setattr(settings, name, value)
    monkeypatch.setattr(providers, "transport", httpx2.ASGITransport(app=fake.app))
    github_only = create_app()

    async with browser(github_only) as web:
        assert (await web.get(f"{OAUTH}/google")).status_code == 404
        assert (await web.get(f"{OAUTH}/github")).status_code == 303


async def test_an_account_with_mfa_still_needs_its_code_after_oauth(
    app, web, at_provider, db_engine, monkeypatch
):
    """Every way in ends in AuthService.sign_in: OAuth proves the first factor only."""
    from datetime import UTC, datetime

    import pyotp

    from src.modules.auth.mfa import service as mfa_service

    now = datetime.now(UTC)
    monkeypatch.setattr(mfa_service, "utcnow", lambda: now)
    owner = await password_user(db_engine, email="ada@example.com", verified=True)
    async with browser(app) as setup:
        login = {"username": owner["email"], "password": owner["password"]}
        assert (await setup.post("/api/v1/auth/login", json=login)).status_code == 200
        secret = (
            await setup.post("/api/v1/auth/mfa/enroll", json={"password": owner["password"]})
        ).json()["secret"]
        code = {"code": pyotp.TOTP(secret).at(now, counter_offset=-1)}
        assert (await setup.post("/api/v1/auth/mfa/confirm", json=code)).status_code == 200

    response = await sign_in(web, at_provider, redirect_to="/inbox")

    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["mfa_required"] == ["1"]
    assert parse_qs(location.query)["redirect_to"] == ["/inbox"]
    assert (await web.get("/api/v1/users/me")).status_code == 401
    verified = await web.post("/api/v1/auth/mfa/verify", json={"code": pyotp.TOTP(secret).at(now)})
    assert verified.status_code == 200, verified.text
    assert (await web.get("/api/v1/users/me")).json()["id"] == owner["id"]


async def test_a_squatters_mfa_does_not_survive_the_owners_takeover(
    app, web, at_provider, db_engine, monkeypatch
):
    """Someone registered the owner's address (unverified) and turned MFA on: the owner's
    verified provider sign-in takes the account over, the squatter's authenticator with it."""
    from datetime import UTC, datetime

    import pyotp

    from src.modules.auth.mfa import service as mfa_service

    now = datetime.now(UTC)
    monkeypatch.setattr(mfa_service, "utcnow", lambda: now)
    squatter = await password_user(db_engine, email="ada@example.com", verified=False)
    async with browser(app) as setup:
        login = {"username": squatter["email"], "password": squatter["password"]}
        assert (await setup.post("/api/v1/auth/login", json=login)).status_code == 200
        secret = (
            await setup.post("/api/v1/auth/mfa/enroll", json={"password": squatter["password"]})
        ).json()["secret"]
        code = {"code": pyotp.TOTP(secret).at(now, counter_offset=-1)}
        assert (await setup.post("/api/v1/auth/mfa/confirm", json=code)).status_code == 200

    response = await sign_in(web, at_provider)

    assert failure(response) is None
    assert urlsplit(response.headers["location"]).path == "/"
    me = await web.get("/api/v1/users/me")
    assert me.json()["id"] == squatter["id"]
    assert (await web.get("/api/v1/auth/mfa")).json()["enabled"] is False


@pytest.mark.parametrize("cookie", ["oauth_flow", "device"])
async def test_a_non_ascii_cookie_is_refused_not_a_500(app, web, cookie):
    raw = [(b"cookie", f"{cookie}=abc.\u00e9".encode("latin-1"))]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as client:
        if cookie == "oauth_flow":
            response = await client.get(
                f"{OAUTH}/google/callback", params={"state": "s", "code": "c"}, headers=raw
            )
            assert failure(response) == "invalid_state"
        else:
            response = await client.post(
                "/api/v1/auth/login",
                json={"username": "nobody", "password": "Whatever-1"},
                headers=raw,
            )
            assert response.status_code == 401
