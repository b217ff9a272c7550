"""MFA with TOTP through HTTP: enroll, confirm, the two-step sign-in, replay, recovery codes,
disable, throttling, concurrency.

Codes are real: pyotp computes them from the secret the enroll response hands out. The server's
TOTP clock (`utcnow` in the MFA service) is frozen per test, so "the code of the next step" is
exact and no test straddles a 30-second boundary; the pending sign-in's expiry runs on the real
clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from httpx import AsyncClient, Response
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from src.infrastructure.config import settings
from src.infrastructure.ratelimit import parse_limits
from src.modules.auth.mfa import service as mfa_service
from src.modules.auth.mfa.models import MfaCredential, MfaRecoveryCode
from src.modules.auth.models import AccountToken
from src.modules.auth.throttle import login_throttle
from src.modules.auth.tokens import Purpose
from src.modules.user.models import User
from tests.helpers.csrf import browser
from tests.helpers.factories import (
    DEFAULT_PASSWORD,
    build_user_create_payload,
    create_user,
    login,
)
from tests.integration.api.test_auth import set_cookies, the_set_cookie

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
LOGOUT = "/api/v1/auth/logout"
MFA = "/api/v1/auth/mfa"
ENROLL = f"{MFA}/enroll"
CONFIRM = f"{MFA}/confirm"
DISABLE = f"{MFA}/disable"
VERIFY = f"{MFA}/verify"
RECOVERY = f"{MFA}/recovery-codes"
USERS_ME = "/api/v1/users/me"
PENDING = settings.MFA_PENDING_COOKIE_NAME
SESSION = settings.SESSION_COOKIE_NAME


class Clock:
    """The server's TOTP clock, frozen; `code(secret, step)` is the code `step` steps from it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def code(self, secret: str, step: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.now, counter_offset=step)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(mfa_service, "utcnow", lambda: frozen.now)
    return frozen


async def enable_mfa(client: AsyncClient, clock: Clock) -> tuple[str, list[str]]:
    """Enroll and confirm (with the previous step's code) for the signed-in user."""
    enrolled = await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})
    assert enrolled.status_code == 200, enrolled.text
    secret = enrolled.json()["secret"]
    confirmed = await client.post(CONFIRM, json={"code": clock.code(secret, -1)})
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def mfa_user(client: AsyncClient, db_session: Any, clock: Clock) -> dict[str, Any]:
    """A user with MFA on, signed out; `secret` and `recovery_codes` added to the row."""
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    secret, codes = await enable_mfa(client, clock)
    assert (await client.post(LOGOUT)).status_code == 204
    return {**user, "secret": secret, "recovery_codes": codes}


async def password_step(client: AsyncClient, user: dict[str, Any]) -> Response:
    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"mfa_required": True}
    return response


async def verify(client: AsyncClient, code: str, **extra: Any) -> Response:
    return await client.post(VERIFY, json={"code": code, **extra})


# --- enroll and confirm ----------------------------------------------------------------------


async def test_enroll_then_confirm_turns_mfa_on_with_ten_recovery_codes(client, db_session, clock):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    assert (await client.get(MFA)).json() == {"enabled": False, "recovery_codes_left": 0}

    enrolled = await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})

    assert enrolled.status_code == 200, enrolled.text
    secret, uri = enrolled.json()["secret"], enrolled.json()["otpauth_uri"]
    parsed = pyotp.parse_uri(uri)
    assert parsed.secret == secret
    assert parsed.name == user["email"]
    assert parsed.issuer == settings.APP_NAME
    # Not on until confirmed.
    assert (await client.get(MFA)).json() == {"enabled": False, "recovery_codes_left": 0}

    confirmed = await client.post(CONFIRM, json={"code": clock.code(secret)})

    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(len(code) == 11 and code[5] == "-" for code in codes)
    assert (await client.get(MFA)).json() == {"enabled": True, "recovery_codes_left": 10}
    # The session that turned MFA on keeps working.
    assert (await client.get(USERS_ME)).status_code == 200


async def test_a_wrong_code_does_not_confirm(client, db_session, clock):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    secret = (await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})).json()["secret"]

    wrong = await client.post(CONFIRM, json={"code": clock.code(secret, 5)})

    assert wrong.status_code == 400
    assert (await client.get(MFA)).json()["enabled"] is False
    assert (await client.post(CONFIRM, json={"code": clock.code(secret)})).status_code == 200


async def test_confirm_without_enrolling_and_enrolling_again_while_on_are_409(
    client, db_session, clock
):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])

    assert (await client.post(CONFIRM, json={"code": "123456"})).status_code == 409
    await enable_mfa(client, clock)
    again = await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})
    assert again.status_code == 409
    assert "secret" not in again.text
    assert (await client.post(CONFIRM, json={"code": "123456"})).status_code == 409


async def test_enrolling_again_before_confirming_replaces_the_secret(client, db_session, clock):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    first = (await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})).json()["secret"]
    second = (await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})).json()["secret"]

    assert first != second
    assert (await client.post(CONFIRM, json={"code": clock.code(first)})).status_code == 400
    assert (await client.post(CONFIRM, json={"code": clock.code(second)})).status_code == 200


async def test_the_mfa_routes_need_a_session_and_csrf(client, plain_client, db_session, clock):
    for method, path in [("GET", MFA), ("POST", ENROLL), ("POST", CONFIRM), ("POST", DISABLE)]:
        body = {"code": "123456", "password": "x"} if method == "POST" else None
        response = await plain_client.request(method, path, json=body)
        assert response.status_code == 401, (path, response.text)

    user = await create_user(db_session)
    await login(plain_client, user["username"], user["password"])
    no_csrf = await plain_client.post(ENROLL, json={"password": DEFAULT_PASSWORD})
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.json()["detail"]


async def test_turning_mfa_on_ends_the_other_sessions(client, app, db_session, clock):
    user = await create_user(db_session)
    async with browser(app) as other:
        await login(other, user["username"], user["password"])
        await login(client, user["username"], user["password"])

        await enable_mfa(client, clock)

        assert (await other.get(USERS_ME)).status_code == 401
        assert (await client.get(USERS_ME)).status_code == 200


async def test_the_secret_is_stored_encrypted_and_recovery_codes_only_hashed(
    client, db_session, clock
):
    user = await mfa_user(client, db_session, clock)

    stored = await db_session.scalar(
        select(MfaCredential.secret_ciphertext).where(MfaCredential.user_id == user["id"])
    )
    hashes = (
        await db_session.scalars(
            select(MfaRecoveryCode.code_hash).where(MfaRecoveryCode.user_id == user["id"])
        )
    ).all()

    assert stored is not None
    assert user["secret"] not in stored
    assert user["secret"].lower() not in stored.lower()
    assert mfa_service.decrypt_secret(user["id"], stored) == user["secret"]
    # Bound to its owner: the same ciphertext is not another account's secret.
    assert mfa_service.decrypt_secret(user["id"] + 1, stored) is None
    assert len(hashes) == 10
    for code in user["recovery_codes"]:
        assert all(code not in h and code.replace("-", "") not in h for h in hashes)


# --- the two-step sign-in ----------------------------------------------------------------------


async def test_the_password_of_an_mfa_account_opens_no_session(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)

    response = await password_step(client, user)

    assert set_cookies(response, SESSION) == []
    assert set_cookies(response, settings.DEVICE_COOKIE_NAME) == []
    assert set_cookies(response, settings.CSRF_COOKIE_NAME) == []  # none bound to a session
    pending = the_set_cookie(response, PENDING)
    assert pending.value
    assert pending.httponly
    assert pending.samesite == "lax"
    assert pending.attributes["path"] == "/api/v1/auth"
    assert pending.attributes["max-age"] == str(settings.MFA_PENDING_TTL_SECONDS)
    assert pending.secure is settings.cookie_secure
    assert (await client.get(USERS_ME)).status_code == 401
    assert (await client.get("/api/v1/auth/me")).json() == {
        "authenticated": False,
        "user": None,
        "session_id": None,
        "via": None,
    }


async def test_the_right_code_opens_a_session_like_a_login(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)

    response = await verify(client, clock.code(user["secret"]))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"user", "session_expires_at"}
    assert body["user"]["username"] == user["username"]
    session = the_set_cookie(response, SESSION)
    assert session.value
    assert session.httponly
    assert "max-age" not in session.attributes  # no remember_me: a browser-session cookie
    assert the_set_cookie(response, settings.CSRF_COOKIE_NAME).value
    assert the_set_cookie(response, settings.DEVICE_COOKIE_NAME).value
    assert the_set_cookie(response, PENDING).value == ""  # cleared
    me = await client.get(USERS_ME)
    assert me.status_code == 200
    assert me.json()["username"] == user["username"]
    # The session is a full one: an unsafe request with its CSRF token works.
    assert (
        await client.post(RECOVERY, json={"code": clock.code(user["secret"], 1)})
    ).status_code == 200


async def test_remember_me_at_verify_keeps_the_session_cookie(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)

    response = await verify(client, clock.code(user["secret"]), remember_me=True)

    assert response.status_code == 200
    cookie = the_set_cookie(response, SESSION)
    assert cookie.attributes["max-age"] == str(settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS)


async def test_a_wrong_code_is_401_and_the_pending_sign_in_stays_usable(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)

    wrong = [await verify(client, code) for code in (clock.code(user["secret"], 7), "000000")]
    unknown_recovery = await verify(client, "aaaaa-bbbbb")

    for response in [*wrong, unknown_recovery]:
        assert response.status_code == 401, response.text
        assert set_cookies(response, SESSION) == []
    assert (await client.get(USERS_ME)).status_code == 401
    right = await verify(client, clock.code(user["secret"]))
    assert right.status_code == 200, right.text
    assert (await client.get(USERS_ME)).status_code == 200


async def test_a_code_works_once(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    code = clock.code(user["secret"])
    await password_step(client, user)
    assert (await verify(client, code)).status_code == 200
    assert (await client.post(LOGOUT)).status_code == 204

    await password_step(client, user)
    replayed = await verify(client, code)
    # Nor an older code that is still inside the window.
    older = await verify(client, clock.code(user["secret"], -1))

    assert replayed.status_code == 401
    assert older.status_code == 401
    assert (await verify(client, clock.code(user["secret"], 1))).status_code == 200


async def test_the_code_that_confirmed_mfa_cannot_sign_in(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)  # confirmed with the code of step -1
    await password_step(client, user)

    assert (await verify(client, clock.code(user["secret"], -1))).status_code == 401


async def test_codes_outside_the_window_are_refused(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)

    later = clock.code(user["secret"], 2)
    earlier = clock.code(user["secret"], -2)

    assert (await verify(client, later)).status_code == 401
    assert (await verify(client, earlier)).status_code == 401
    clock.now += timedelta(seconds=60)  # two steps on: `later` is now current
    assert (await verify(client, later)).status_code == 200


async def test_an_expired_pending_sign_in_is_refused(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db_session.execute(
        update(AccountToken)
        .where(AccountToken.purpose == Purpose.MFA_LOGIN.value)
        .values(expires_at=past)
    )
    await db_session.commit()

    response = await verify(client, clock.code(user["secret"]))

    assert response.status_code == 401
    assert "log in again" in response.json()["detail"]
    assert (await client.get(USERS_ME)).status_code == 401


async def test_the_pending_ttl_is_the_setting(client, db_session, clock, monkeypatch):
    monkeypatch.setattr(settings, "MFA_PENDING_TTL_SECONDS", 42)
    user = await mfa_user(client, db_session, clock)

    response = await password_step(client, user)

    assert the_set_cookie(response, PENDING).attributes["max-age"] == "42"
    expires_at = await db_session.scalar(
        select(AccountToken.expires_at).where(AccountToken.purpose == Purpose.MFA_LOGIN.value)
    )
    assert abs(expires_at - (datetime.now(UTC) + timedelta(seconds=42))) < timedelta(seconds=10)


async def test_a_pending_sign_in_works_once(client, app, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    pending = the_set_cookie(await password_step(client, user), PENDING).value
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200

    async with browser(app, cookies={PENDING: pending}) as replay:
        again = await verify(replay, clock.code(user["secret"], 1))

        assert again.status_code == 401
        assert (await replay.get(USERS_ME)).status_code == 401


async def test_verify_without_a_pending_sign_in_or_cross_site_is_refused(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)

    assert (await verify(client, clock.code(user["secret"]))).status_code == 401
    await password_step(client, user)
    cross_site = await client.post(
        VERIFY,
        json={"code": clock.code(user["secret"])},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200


async def test_a_password_change_voids_the_pending_sign_in(client, app, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200
    async with browser(app) as attacker:
        await password_step(attacker, user)
        changed = await client.post(
            "/api/v1/auth/change-password",
            json={"new_password": "Another-passphrase-42", "current_password": user["password"]},
        )
        assert changed.status_code == 200, changed.text

        assert (await verify(attacker, clock.code(user["secret"], 1))).status_code == 401


async def test_a_password_rehashed_at_the_password_step_keeps_the_pending_sign_in(
    client, db_session, clock
):
    user = await mfa_user(client, db_session, clock)
    old_hash = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=2048, parallelism=1),)).hash(
        user["password"]
    )
    await db_session.execute(
        update(User).where(User.id == user["id"]).values(hashed_password=old_hash)
    )
    await db_session.commit()

    await password_step(client, user)

    stored = await db_session.scalar(select(User.hashed_password).where(User.id == user["id"]))
    assert stored != old_hash  # rehashed with the current parameters
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200


async def test_a_recovery_code_signs_in_once(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    first, second = user["recovery_codes"][:2]
    await password_step(client, user)

    assert (await verify(client, first)).status_code == 200
    assert (await client.get(MFA)).json() == {"enabled": True, "recovery_codes_left": 9}
    assert (await client.post(LOGOUT)).status_code == 204

    await password_step(client, user)
    assert (await verify(client, first)).status_code == 401
    # Typed loosely: upper case, no hyphen, spaces.
    loose = f" {second.replace('-', '').upper()[:5]} {second.replace('-', '').upper()[5:]} "
    assert (await verify(client, loose)).status_code == 200
    assert (await client.get(MFA)).json()["recovery_codes_left"] == 8


async def test_new_recovery_codes_replace_the_old_ones(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200

    wrong = await client.post(RECOVERY, json={"code": "000000"})
    response = await client.post(RECOVERY, json={"code": clock.code(user["secret"], 1)})

    assert wrong.status_code == 400
    assert response.status_code == 200, response.text
    fresh = response.json()["recovery_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(user["recovery_codes"])
    assert (await client.post(LOGOUT)).status_code == 204
    await password_step(client, user)
    assert (await verify(client, user["recovery_codes"][0])).status_code == 401
    assert (await verify(client, fresh[0])).status_code == 200


async def test_a_non_mfa_login_is_unchanged(client, db_session):
    user = await create_user(db_session)

    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    assert response.status_code == 200
    assert set(response.json()) == {"user", "session_expires_at"}
    assert the_set_cookie(response, SESSION).value
    assert set_cookies(response, PENDING) == []
    assert (await client.get(USERS_ME)).status_code == 200


# --- disable -------------------------------------------------------------------------------------


async def test_disable_needs_the_password_and_a_code(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200
    code = clock.code(user["secret"], 1)

    wrong_password = await client.post(DISABLE, json={"password": "Wrong-pass-1", "code": code})
    wrong_code = await client.post(DISABLE, json={"password": user["password"], "code": "000000"})
    missing_code = await client.post(DISABLE, json={"password": user["password"]})

    assert wrong_password.status_code == 400
    assert wrong_code.status_code == 400
    assert missing_code.status_code == 422
    assert (await client.get(MFA)).json()["enabled"] is True
    # The wrong password did not use the code up.
    done = await client.post(DISABLE, json={"password": user["password"], "code": code})
    assert done.status_code == 204, done.text
    assert (await client.get(MFA)).json() == {"enabled": False, "recovery_codes_left": 0}
    assert (
        await db_session.scalar(
            select(MfaCredential.user_id).where(MfaCredential.user_id == user["id"])
        )
        is None
    )
    assert (
        await db_session.scalars(
            select(MfaRecoveryCode.id).where(MfaRecoveryCode.user_id == user["id"])
        )
    ).all() == []
    # Signing in is one step again, and MFA can be enrolled anew.
    assert (await client.post(LOGOUT)).status_code == 204
    await login(client, user["username"], user["password"])
    assert (await client.get(USERS_ME)).status_code == 200
    assert (
        await client.post(DISABLE, json={"password": user["password"], "code": code})
    ).status_code == 409
    assert (await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})).status_code == 200


async def test_disable_with_a_recovery_code(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    assert (await verify(client, user["recovery_codes"][0])).status_code == 200

    response = await client.post(
        DISABLE, json={"password": user["password"], "code": user["recovery_codes"][1]}
    )

    assert response.status_code == 204
    assert (await client.get(MFA)).json()["enabled"] is False


# --- input and output hygiene --------------------------------------------------------------------


async def test_bad_input_is_never_echoed(client, db_session, clock):
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    long_code = "9" * 40 + "SECRETCODE"
    long_password = "P" * 2000

    bad_verify = await client.post(VERIFY, json={"code": long_code})
    short = await client.post(VERIFY, json={"code": "12"})
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200
    bad_disable = await client.post(DISABLE, json={"password": long_password, "code": long_code})

    for response in (bad_verify, short, bad_disable):
        assert response.status_code == 422
        assert long_code not in response.text
        assert "SECRETCODE" not in response.text
        assert long_password[:50] not in response.text
        assert '"12"' not in response.text


async def test_the_secret_and_codes_are_never_logged(client, db_session, clock, caplog):
    caplog.set_level("DEBUG")
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    await verify(client, "000000")
    await verify(client, user["recovery_codes"][0])

    logged = caplog.text
    assert user["secret"] not in logged
    assert all(code not in logged for code in user["recovery_codes"])


# --- throttling ----------------------------------------------------------------------------------


async def test_wrong_codes_are_throttled_like_failed_logins(
    client, app, db_session, clock, monkeypatch
):
    monkeypatch.setattr(login_throttle, "account_limits", parse_limits("3/day"))
    monkeypatch.setattr(login_throttle, "ip_limits", parse_limits("1000/day"))
    user = await mfa_user(client, db_session, clock)
    async with browser(app) as stranger:  # no device cookie for this account
        await password_step(stranger, user)

        failures = [await verify(stranger, f"00000{n}") for n in range(3)]
        right_code = await verify(stranger, clock.code(user["secret"]))
        password_again = await stranger.post(
            LOGIN, json={"username": user["username"], "password": user["password"]}
        )

        assert [r.status_code for r in failures] == [401, 401, 401]
        assert right_code.status_code == 429
        assert int(right_code.headers["Retry-After"]) >= 1
        assert set_cookies(right_code, SESSION) == []
        assert password_again.status_code == 429
        assert (await stranger.get(USERS_ME)).status_code == 401

    # The owner's browser (it signed in before: device cookie) is not locked out.
    await password_step(client, user)
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200


async def test_a_right_password_does_not_reset_the_code_failures(
    client, app, db_session, clock, monkeypatch
):
    monkeypatch.setattr(login_throttle, "account_limits", parse_limits("4/day"))
    monkeypatch.setattr(login_throttle, "ip_limits", parse_limits("1000/day"))
    user = await mfa_user(client, db_session, clock)
    async with browser(app) as stranger:
        statuses = []
        for n in range(3):
            await password_step(stranger, user)  # each new pending sign-in...
            statuses += [(await verify(stranger, f"00000{n}")).status_code]
        await password_step(stranger, user)
        statuses += [(await verify(stranger, "000009")).status_code]

        # ...kept counting: the fifth try is refused whatever it is.
        assert statuses == [401, 401, 401, 401]
        assert (await verify(stranger, clock.code(user["secret"]))).status_code == 429


async def test_wrong_disable_attempts_are_throttled(client, db_session, clock, monkeypatch):
    monkeypatch.setattr(login_throttle, "device_limits", parse_limits("2/day"))
    user = await mfa_user(client, db_session, clock)
    await password_step(client, user)
    assert (await verify(client, clock.code(user["secret"]))).status_code == 200
    body = {"password": "Wrong-pass-1", "code": clock.code(user["secret"], 1)}

    statuses = [(await client.post(DISABLE, json=body)).status_code for _ in range(3)]

    assert statuses == [400, 400, 429]


# --- concurrency ---------------------------------------------------------------------------------


async def test_two_verifications_of_one_pending_sign_in_open_one_session(
    committed_client, app, clock
):
    payload = build_user_create_payload()
    assert (await committed_client.post("/api/v1/users", json=payload)).status_code == 201
    await login(committed_client, payload["username"], payload["password"])
    secret, codes = await enable_mfa(committed_client, clock)
    assert (await committed_client.post(LOGOUT)).status_code == 204
    user = {**payload, "secret": secret}
    pending = the_set_cookie(await password_step(committed_client, user), PENDING).value

    async with (
        browser(app, cookies={PENDING: pending}) as first,
        browser(app, cookies={PENDING: pending}) as second,
    ):
        results = await asyncio.gather(verify(first, clock.code(secret)), verify(second, codes[0]))

        assert sorted(r.status_code for r in results) == [200, 401], [r.text for r in results]
        winner, loser = (first, second) if results[0].status_code == 200 else (second, first)
        assert (await winner.get(USERS_ME)).status_code == 200
        assert (await loser.get(USERS_ME)).status_code == 401


# --- review fixes: a stolen session cannot enable MFA; secrets are never cached -------------


async def test_enrolling_needs_the_password_and_wrong_ones_are_throttled(
    client, db_session, monkeypatch
):
    from src.infrastructure.ratelimit import parse_limits
    from src.modules.auth.throttle import login_throttle

    monkeypatch.setattr(login_throttle, "account_limits", parse_limits("2/day"))
    monkeypatch.setattr(login_throttle, "device_limits", parse_limits("2/day"))
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])

    wrong = [
        (await client.post(ENROLL, json={"password": "Not-the-password-1"})).status_code
        for _ in range(3)
    ]
    missing = await client.post(ENROLL, json={})

    assert wrong == [400, 400, 429]
    assert missing.status_code == 422


async def test_secrets_and_codes_are_never_cached(client, db_session, clock):
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])

    enrolled = await client.post(ENROLL, json={"password": DEFAULT_PASSWORD})
    confirmed = await client.post(CONFIRM, json={"code": clock.code(enrolled.json()["secret"], -1)})
    renewed = await client.post(
        "/api/v1/auth/mfa/recovery-codes", json={"code": clock.code(enrolled.json()["secret"])}
    )

    for response in (enrolled, confirmed, renewed):
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"


async def test_mfa_changes_are_mailed_to_the_account(
    committed_client, db_engine, clock, monkeypatch
):
    from src.infrastructure.database.session import get_sessionmaker
    from src.infrastructure.email import MemoryEmailSender, get_email_sender
    from src.infrastructure.taskiq import default_broker
    from src.infrastructure.taskiq.brokers import drain

    sender = MemoryEmailSender()
    monkeypatch.setitem(default_broker.dependency_overrides, get_email_sender, lambda: sender)
    async with get_sessionmaker()() as db:
        user = await create_user(db)
    await login(committed_client, user["username"], user["password"])
    secret, _ = await enable_mfa(committed_client, clock)
    code = {"code": clock.code(secret)}
    assert (
        await committed_client.post("/api/v1/auth/mfa/recovery-codes", json=code)
    ).status_code == 200
    off = {"password": user["password"], "code": clock.code(secret, 1)}
    assert (await committed_client.post(DISABLE, json=off)).status_code == 204
    await drain(default_broker)

    texts = [m.text for m in sender.sent_to(user["email"]) if "security setting" in m.subject]
    assert len(texts) == 3  # delivered in any order: the tasks run independently
    for event in ("turned on", "recovery codes", "turned off"):
        assert sum(event in text for text in texts) == 1, event
