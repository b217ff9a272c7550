"""Sign-in and sessions when their Redis dies: a private `redis-server` on a free port, killed
during a password-guessing loop and during session-authenticated reads.

- The login throttle fails closed: after the kill no answer is a 2xx or a 401, only 503 with
  `Retry-After`, and the right password gets exactly the wrong one's answer. After a restart,
  logins work again without restarting the app.
- So does the second step of an MFA sign-in: a right code and a wrong one both get 503, no
  session, and the pending sign-in is still there once Redis is back.
- A Redis session store that dies answers 503, not 500.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyotp
import pytest

from src.infrastructure.config import settings
from src.infrastructure.ratelimit import limiter as limiter_module
from src.modules.auth import sessions as session_stores
from src.modules.auth.mfa import service as mfa_service
from tests.helpers.factories import create_user, login
from tests.helpers.servers import private_redis

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOGIN = "/api/v1/auth/login"
WRONG = "Wrong-password-1"


@pytest.fixture
def redis_server(monkeypatch):
    """A private Redis that the rate limiter (and so the login throttle) uses."""
    with private_redis() as server:
        monkeypatch.setattr(settings, "RATE_LIMIT_STORAGE", "redis")
        monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", True)
        monkeypatch.setattr(settings, "REDIS_URL", server.url)
        limiter_module.get_rate_limiter.cache_clear()
        session_stores._store.cache_clear()
        try:
            yield server
        finally:
            limiter_module.get_rate_limiter.cache_clear()
            session_stores._store.cache_clear()


async def test_the_login_throttle_fails_closed_when_its_redis_dies(
    client, db_session, redis_server
):
    user = await create_user(db_session)
    guess = {"username": user["username"], "password": WRONG}
    right = {"username": user["email"], "password": user["password"]}

    before = [(await client.post(LOGIN, json=guess)).status_code for _ in range(3)]
    redis_server.kill()
    during = [await client.post(LOGIN, json=guess) for _ in range(10)]
    right_during = await client.post(LOGIN, json=right)
    redis_server.start()  # same port, empty: the app reconnects by itself
    after = await client.post(LOGIN, json=right)

    assert before == [401, 401, 401]
    assert {r.status_code for r in during} == {503}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in during)
    assert right_during.status_code == 503
    assert right_during.json() == during[0].json()
    assert settings.SESSION_COOKIE_NAME not in right_during.cookies
    assert after.status_code == 200, after.text


async def test_mfa_verification_fails_closed_when_the_throttle_redis_dies(
    client, db_session, redis_server, monkeypatch
):
    now = datetime.now(UTC)
    monkeypatch.setattr(mfa_service, "utcnow", lambda: now)
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    secret = (
        await client.post("/api/v1/auth/mfa/enroll", json={"password": user["password"]})
    ).json()["secret"]
    totp = pyotp.TOTP(secret)
    confirm = {"code": totp.at(now, counter_offset=-1)}
    assert (await client.post("/api/v1/auth/mfa/confirm", json=confirm)).status_code == 200
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
    right = {"username": user["username"], "password": user["password"]}
    assert (await client.post(LOGIN, json=right)).json() == {"mfa_required": True}
    verify = "/api/v1/auth/mfa/verify"

    redis_server.kill()
    during = [await client.post(verify, json={"code": f"00000{n}"}) for n in range(10)]
    right_during = await client.post(verify, json={"code": totp.at(now)})
    redis_server.start()  # same port, empty: the app reconnects by itself
    # A connection pooled before the kill may fail one more request (503, nothing used up).
    for _ in range(3):
        after = await client.post(verify, json={"code": totp.at(now)})
        if after.status_code != 503:
            break

    assert {r.status_code for r in during} == {503}
    assert right_during.status_code == 503
    assert right_during.json() == during[0].json()
    assert settings.SESSION_COOKIE_NAME not in right_during.cookies
    assert after.status_code == 200, after.text


async def test_a_redis_session_store_that_dies_answers_503(
    client, db_session, redis_server, caplog
):
    settings_backend = settings.SESSION_BACKEND
    settings.SESSION_BACKEND = "redis"
    session_stores._store.cache_clear()
    try:
        user = await create_user(db_session)
        login = await client.post(
            LOGIN, json={"username": user["username"], "password": user["password"]}
        )
        assert login.status_code == 200, login.text
        assert (await client.get("/api/v1/users/me")).status_code == 200

        redis_server.kill()
        with caplog.at_level(logging.INFO):
            reads = [await client.get("/api/v1/users/me") for _ in range(5)]
        redis_server.start()
        # The records died with the server (it keeps nothing): the session is gone, cleanly.
        after = await client.get("/api/v1/users/me")
    finally:
        settings.SESSION_BACKEND = settings_backend
        session_stores._store.cache_clear()

    assert {r.status_code for r in reads} == {503}
    assert all(r.headers["Retry-After"] for r in reads)
    # One warning line per request, carrying its request id; no traceback anywhere. (The rate
    # limiter shares this Redis: when its batched sync falls in the outage, it says once that
    # it serves unlimited; that line is about the limiter, not these requests.)
    problems = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "src.ratelimit"
    ]
    assert len(problems) == len(reads)
    assert all(r.name == "src.errors" and r.exc_info is None for r in problems)
    ids = {r.headers["X-Request-ID"] for r in reads}
    assert len(ids) == len(reads)
    assert after.status_code == 401
