"""Login throttling over HTTP: failed logins per account and per client IP -> 429 with
`Retry-After`, before any password is checked; a spoofed X-Forwarded-For gains nothing; a
username and an email fold to one account; a browser that signed in before (device cookie) is
not locked out by strangers.

The limits are set per day here so no test straddles a window (exact counts on both storages);
the shipped values are checked in tests/unit/modules/auth/test_throttle.py.
"""

from __future__ import annotations

import random

import pytest

from src.infrastructure.auth import passwords
from src.infrastructure.config import settings
from src.infrastructure.ratelimit import parse_limits
from src.modules.auth.throttle import LoginThrottle, login_throttle
from tests.helpers.csrf import browser
from tests.helpers.factories import create_user

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
WRONG = "Wrong-password-1"


@pytest.fixture
def limits(monkeypatch):
    def set_limits(*, account: str = "1000/day", ip: str = "1000/day") -> None:
        monkeypatch.setattr(login_throttle, "account_limits", parse_limits(account))
        monkeypatch.setattr(login_throttle, "ip_limits", parse_limits(ip))

    return set_limits


def _spoofed() -> dict[str, str]:
    return {"X-Forwarded-For": ".".join(str(random.randint(1, 254)) for _ in range(4))}


async def test_an_account_is_throttled_after_too_many_failures(client, db_session, limits):
    limits(account="3/day")
    user = await create_user(db_session)

    failures = [
        await client.post(LOGIN, json={"username": user["username"], "password": WRONG})
        for _ in range(3)
    ]
    right_password = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    assert [r.status_code for r in failures] == [401, 401, 401]
    assert right_password.status_code == 429
    assert 1 <= int(right_password.headers["Retry-After"]) <= 24 * 3600
    assert "failed login" in right_password.json()["detail"]
    assert "session" not in right_password.cookies
    # Other accounts from the same client are not affected.
    other = await create_user(db_session)
    ok = await client.post(LOGIN, json={"username": other["email"], "password": other["password"]})
    assert ok.status_code == 200


async def test_a_throttled_login_spends_no_password_hashing(
    client, db_session, limits, monkeypatch
):
    limits(account="1/day")
    user = await create_user(db_session)
    await client.post(LOGIN, json={"username": user["username"], "password": WRONG})
    hasher = passwords._hasher()
    calls: list[object] = []
    real_verify = hasher.verify_and_update
    monkeypatch.setattr(
        hasher, "verify_and_update", lambda *a, **k: calls.append(a) or real_verify(*a, **k)
    )

    response = await client.post(LOGIN, json={"username": user["username"], "password": WRONG})

    assert response.status_code == 429
    assert calls == []


async def test_unknown_accounts_are_throttled_like_real_ones(client, db_session, limits):
    limits(account="2/day")
    user = await create_user(db_session)
    answers = {}
    for name in (user["username"], "nobody_by_that_name"):
        for _ in range(2):
            await client.post(LOGIN, json={"username": name, "password": WRONG})
        answers[name] = await client.post(LOGIN, json={"username": name, "password": WRONG})

    real, unknown = answers.values()
    assert real.status_code == unknown.status_code == 429
    assert real.json() == unknown.json()


async def test_a_client_ip_is_throttled_across_accounts(client, db_session, limits):
    limits(ip="4/day")
    for index in range(4):  # four different accounts, one failure each
        await client.post(LOGIN, json={"username": f"guess_{index}", "password": WRONG})
    user = await create_user(db_session)

    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    assert response.status_code == 429
    assert "Retry-After" in response.headers


@pytest.mark.parametrize("hops", [0, 1])
async def test_a_spoofed_x_forwarded_for_does_not_escape_the_ip_throttle(
    client, db_session, limits, monkeypatch, hops
):
    limits(ip="3/day")
    monkeypatch.setattr(settings, "TRUSTED_PROXY_HOPS", hops)

    def headers() -> dict[str, str]:
        spoofed = _spoofed()["X-Forwarded-For"]
        return {"X-Forwarded-For": f"{spoofed}, 203.0.113.77" if hops else spoofed}

    statuses = [
        (
            await client.post(
                LOGIN, json={"username": f"guess_{i}", "password": WRONG}, headers=headers()
            )
        ).status_code
        for i in range(5)
    ]

    assert statuses == [401, 401, 401, 429, 429]


async def test_a_successful_login_clears_the_account_count(client, db_session, limits):
    limits(account="3/day")
    user = await create_user(db_session)
    wrong = {"username": user["username"], "password": WRONG}
    right = {"username": user["username"], "password": user["password"]}

    for _ in range(2):
        assert (await client.post(LOGIN, json=wrong)).status_code == 401
    assert (await client.post(LOGIN, json=right)).status_code == 200
    client.cookies.clear()
    for _ in range(2):
        assert (await client.post(LOGIN, json=wrong)).status_code == 401
    assert (await client.post(LOGIN, json=right)).status_code == 200


async def test_invalid_requests_are_not_counted_as_failures(client, db_session, limits):
    limits(account="1/day", ip="1/day")
    user = await create_user(db_session)
    for _ in range(3):
        assert (await client.post(LOGIN, json={"username": user["username"]})).status_code == 422
    ok = await client.post(LOGIN, json={"username": user["username"], "password": user["password"]})
    assert ok.status_code == 200


async def test_rate_limit_enabled_false_turns_login_throttling_off(
    client, db_session, limits, monkeypatch
):
    limits(account="1/day", ip="1/day")
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    user = await create_user(db_session)
    for _ in range(3):
        response = await client.post(LOGIN, json={"username": user["username"], "password": WRONG})
        assert response.status_code == 401


async def test_username_and_email_fold_to_one_account(client, db_session, limits):
    limits(account="3/day")
    user = await create_user(db_session)
    for name in (user["username"], user["email"].upper(), user["username"]):
        assert (
            await client.post(LOGIN, json={"username": name, "password": WRONG})
        ).status_code == 401

    response = await client.post(LOGIN, json={"username": user["email"], "password": WRONG})

    assert response.status_code == 429


async def test_strangers_cannot_lock_the_owner_out_of_a_known_browser(
    app, client, db_session, monkeypatch
):
    """The shipped limits: 50 failures by a stranger (same IP) lock the account and the IP for
    strangers, but the owner's browser, which signed in before, still gets in."""
    monkeypatch.setattr("src.modules.auth.service.login_throttle", LoginThrottle())
    user = await create_user(db_session)
    right = {"username": user["username"], "password": user["password"]}
    owner = await client.post(LOGIN, json=right)  # the owner's browser, some day before
    assert owner.status_code == 200
    assert client.cookies.get(settings.DEVICE_COOKIE_NAME)
    client.cookies.delete(settings.SESSION_COOKIE_NAME)  # signed out since

    async with browser(app) as stranger:
        statuses = [
            (
                await stranger.post(LOGIN, json={"username": user["username"], "password": WRONG})
            ).status_code
            for _ in range(50)
        ]
        locked = await stranger.post(LOGIN, json=right)
    # A device cookie of another account, or a forged one, buys a stranger nothing.
    other = await create_user(db_session)
    async with browser(app) as other_browser:
        other_login = {"username": other["username"], "password": other["password"]}
        assert (await other_browser.post(LOGIN, json=other_login)).status_code == 200
        other_browser.cookies.delete(settings.SESSION_COOKIE_NAME)
        with_other_device = await other_browser.post(LOGIN, json=right)
    forged = f"{user['id']}.nonce.{'0' * 64}"
    async with browser(app, cookies={settings.DEVICE_COOKIE_NAME: forged}) as forger:
        forged_answer = await forger.post(LOGIN, json=right)

    back = await client.post(LOGIN, json=right)

    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    assert locked.status_code == 429
    assert forged_answer.status_code == 429
    assert with_other_device.status_code == 429
    assert back.status_code == 200, back.text


async def test_a_known_browser_has_a_failure_budget_of_its_own(client, db_session, limits):
    limits(account="1000/day", ip="1000/day")
    user = await create_user(db_session)
    right = {"username": user["username"], "password": user["password"]}
    assert (await client.post(LOGIN, json=right)).status_code == 200

    statuses = [
        (
            await client.post(LOGIN, json={"username": user["username"], "password": WRONG})
        ).status_code
        for _ in range(6)
    ]

    assert statuses == [401] * 5 + [429]  # DEVICE_LIMITS: 5/minute


async def test_the_device_cookie_is_httponly_and_scoped_to_the_auth_routes(client, db_session):
    user = await create_user(db_session)
    response = await client.post(
        LOGIN, json={"username": user["username"], "password": user["password"]}
    )

    header = next(
        value
        for value in response.headers.get_list("set-cookie")
        if value.startswith(settings.DEVICE_COOKIE_NAME + "=")
    )
    assert "HttpOnly" in header
    assert "Path=/api/v1/auth" in header
    assert f"Max-Age={settings.DEVICE_COOKIE_MAX_AGE_SECONDS}" in header
