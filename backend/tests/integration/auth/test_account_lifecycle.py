"""The account lifecycle over HTTP with real commits and the real tasks: the emails are read
from a recording sender (the tasks' `get_email_sender` dependency), the links followed as a
user would (token from the link, posted to the confirm route)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from httpx import AsyncClient

from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.database.session import get_sessionmaker
from src.infrastructure.email import MemoryEmailSender, get_email_sender
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.brokers import drain
from src.modules.auth import tokens as tokens_module
from src.modules.auth.throttle import EmailRequestThrottle
from tests.helpers.csrf import browser
from tests.helpers.factories import DEFAULT_PASSWORD, build_user_create_payload, create_user

pytestmark = pytest.mark.integration

AUTH = "/api/v1/auth"
ME = "/api/v1/users/me"
NEW_PASSWORD = "Brand-new-passphrase-9"


@pytest_asyncio.fixture
async def mailbox() -> AsyncIterator[MemoryEmailSender]:
    sender = MemoryEmailSender()
    default_broker.dependency_overrides[get_email_sender] = lambda: sender
    try:
        yield sender
    finally:
        default_broker.dependency_overrides.pop(get_email_sender, None)


async def settle() -> None:
    """Let the background tasks the requests sent finish (a worker's job)."""
    await drain(default_broker)


def link_token(mailbox: MemoryEmailSender, address: str, page: str) -> str:
    """The token of the latest `page` link mailed to `address`."""
    for message in reversed(mailbox.sent_to(address)):
        found = re.search(rf"/{page}\?token=([A-Za-z0-9_\-]+)", message.text)
        if found:
            assert message.html is not None
            assert found.group(1) in message.html
            return found.group(1)
    raise AssertionError(f"no {page} link mailed to {address}: {mailbox.outbox}")


async def committed_user(**overrides: Any) -> dict[str, Any]:
    async with get_sessionmaker()() as db:
        return await create_user(db, **overrides)


async def sign_in(client: AsyncClient, username: str, password: str = DEFAULT_PASSWORD) -> None:
    response = await client.post(f"{AUTH}/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text


# --- email verification ----------------------------------------------------------------------


async def test_sign_up_mails_a_verification_link_that_verifies_once(committed_client, mailbox):
    payload = build_user_create_payload()
    assert (await committed_client.post("/api/v1/users", json=payload)).status_code == 201
    await settle()
    [welcome] = mailbox.sent_to(payload["email"])
    assert welcome.subject.startswith("Welcome to")
    token = link_token(mailbox, payload["email"], "verify-email")
    await sign_in(committed_client, payload["username"], payload["password"])
    assert (await committed_client.get(ME)).json()["is_verified"] is False

    first = await committed_client.post(f"{AUTH}/email/verify-confirm", json={"token": token})
    again = await committed_client.post(f"{AUTH}/email/verify-confirm", json={"token": token})

    assert first.status_code == 200, first.text
    assert (await committed_client.get(ME)).json()["is_verified"] is True
    assert again.status_code == 400
    assert "invalid" in again.json()["detail"]


async def test_verify_request_answers_the_same_for_any_address(committed_client, mailbox):
    unverified = await committed_user()
    verified = await committed_user()
    async with get_sessionmaker()() as db:
        from src.modules.user.crud import crud_users

        await crud_users.update(db, {"is_verified": True}, id=verified["id"])

    answers = [
        await committed_client.post(f"{AUTH}/email/verify-request", json={"email": address})
        for address in (unverified["email"], verified["email"], "nobody@example.com")
    ]
    await settle()

    assert {a.status_code for a in answers} == {202}
    assert len({a.text for a in answers}) == 1
    assert link_token(mailbox, unverified["email"], "verify-email")
    assert mailbox.sent_to(verified["email"]) == []
    assert mailbox.sent_to("nobody@example.com") == []


async def test_verification_can_be_required(committed_client, mailbox, monkeypatch):
    monkeypatch.setattr(settings, "EMAIL_VERIFICATION_REQUIRED", True)
    user = await committed_user()
    await sign_in(committed_client, user["username"])
    patch = f"/api/v1/users/{user['username']}"

    refused = await committed_client.patch(patch, json={"name": "Renamed"})
    await committed_client.post(f"{AUTH}/email/verify-request", json={"email": user["email"]})
    await settle()
    token = link_token(mailbox, user["email"], "verify-email")
    await committed_client.post(f"{AUTH}/email/verify-confirm", json={"token": token})
    allowed = await committed_client.patch(patch, json={"name": "Renamed"})

    assert refused.status_code == 403
    assert "verify-request" in refused.json()["detail"]
    assert allowed.status_code == 200, allowed.text


# --- password reset --------------------------------------------------------------------------


async def test_a_reset_sets_the_password_and_ends_every_session(app, committed_client, mailbox):
    user = await committed_user()
    await sign_in(committed_client, user["username"])
    async with browser(app) as stranger:
        asked = await stranger.post(
            f"{AUTH}/password/reset-request", json={"email": user["email"].upper()}
        )
        await settle()
        token = link_token(mailbox, user["email"], "reset-password")
        done = await stranger.post(
            f"{AUTH}/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        replay = await stranger.post(
            f"{AUTH}/password/reset-confirm",
            json={"token": token, "new_password": "Yet-another-passphrase-7"},
        )
        old_password = await stranger.post(
            f"{AUTH}/login", json={"username": user["username"], "password": DEFAULT_PASSWORD}
        )
        await sign_in(stranger, user["username"], NEW_PASSWORD)
        await settle()

    assert asked.status_code == 202
    assert done.status_code == 200, done.text
    assert replay.status_code == 400
    assert old_password.status_code == 401
    assert (await committed_client.get(ME)).status_code == 401  # the old session ended
    notices = [m for m in mailbox.sent_to(user["email"]) if "password changed" in m.subject]
    assert len(notices) == 1
    assert "reset link" in notices[0].text


async def test_reset_request_for_an_unknown_address_looks_the_same(committed_client, mailbox):
    user = await committed_user()
    known = await committed_client.post(
        f"{AUTH}/password/reset-request", json={"email": user["email"]}
    )
    unknown = await committed_client.post(
        f"{AUTH}/password/reset-request", json={"email": "ghost@example.com"}
    )
    await settle()

    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(mailbox.sent_to(user["email"])) == 1
    assert mailbox.outbox == mailbox.sent_to(user["email"])


async def test_a_reset_link_dies_when_the_password_changes(committed_client, mailbox):
    user = await committed_user()
    await committed_client.post(f"{AUTH}/password/reset-request", json={"email": user["email"]})
    await settle()
    token = link_token(mailbox, user["email"], "reset-password")
    await sign_in(committed_client, user["username"])
    changed = await committed_client.post(
        f"{AUTH}/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )

    late = await committed_client.post(
        f"{AUTH}/password/reset-confirm",
        json={"token": token, "new_password": "Yet-another-passphrase-7"},
    )

    assert changed.status_code == 200, changed.text
    assert late.status_code == 400


async def test_a_token_works_only_for_its_purpose(committed_client, mailbox):
    user = await committed_user()
    await committed_client.post(f"{AUTH}/email/verify-request", json={"email": user["email"]})
    await settle()
    verify_token = link_token(mailbox, user["email"], "verify-email")

    wrong = await committed_client.post(
        f"{AUTH}/password/reset-confirm",
        json={"token": verify_token, "new_password": NEW_PASSWORD},
    )
    right = await committed_client.post(
        f"{AUTH}/email/verify-confirm", json={"token": verify_token}
    )

    assert wrong.status_code == 400
    assert right.status_code == 200


async def test_an_expired_reset_link_is_refused(committed_client, mailbox, monkeypatch):
    user = await committed_user()
    await committed_client.post(f"{AUTH}/password/reset-request", json={"email": user["email"]})
    await settle()
    token = link_token(mailbox, user["email"], "reset-password")
    later = utcnow() + timedelta(seconds=settings.PASSWORD_RESET_TOKEN_TTL_SECONDS + 1)
    monkeypatch.setattr(tokens_module, "utcnow", lambda: later)

    response = await committed_client.post(
        f"{AUTH}/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 400


async def test_email_requests_are_limited_per_address(committed_client, mailbox, monkeypatch):
    monkeypatch.setattr(
        "src.modules.auth.account.routes.email_request_throttle",
        EmailRequestThrottle(address_limits="2/hour", ip_limits="100/hour"),
    )
    statuses = [
        (
            await committed_client.post(
                f"{AUTH}/password/reset-request", json={"email": "target@example.com"}
            )
        ).status_code
        for _ in range(3)
    ]
    other = await committed_client.post(
        f"{AUTH}/password/reset-request", json={"email": "other@example.com"}
    )

    assert statuses == [202, 202, 429]
    assert other.status_code == 202


# --- change password -------------------------------------------------------------------------


async def test_change_password_keeps_this_session_and_ends_the_others(
    app, committed_client, mailbox
):
    user = await committed_user()
    await sign_in(committed_client, user["username"])
    async with browser(app) as other_device:
        await sign_in(other_device, user["username"])

        wrong = await committed_client.post(
            f"{AUTH}/change-password",
            json={"current_password": "Not-my-password-1", "new_password": NEW_PASSWORD},
        )
        done = await committed_client.post(
            f"{AUTH}/change-password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        )
        await settle()

        assert wrong.status_code == 400
        assert "current_password" in wrong.json()["detail"]
        assert done.status_code == 200, done.text
        assert (await committed_client.get(ME)).status_code == 200
        assert (await other_device.get(ME)).status_code == 401
    assert any("password changed" in m.subject for m in mailbox.sent_to(user["email"]))


async def test_change_password_applies_the_password_rules(committed_client):
    user = await committed_user()
    await sign_in(committed_client, user["username"])

    response = await committed_client.post(
        f"{AUTH}/change-password", json={"current_password": DEFAULT_PASSWORD, "new_password": "x"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "new_password"


async def test_change_password_needs_a_session_and_csrf(app, committed_client):
    anonymous = await committed_client.post(
        f"{AUTH}/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    user = await committed_user()
    async with browser(app, csrf_aware=False) as no_csrf:
        await sign_in(no_csrf, user["username"])
        forged = await no_csrf.post(
            f"{AUTH}/change-password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        )

    assert anonymous.status_code == 401
    assert forged.status_code == 403


# --- email change ----------------------------------------------------------------------------


async def test_an_email_change_needs_the_new_address_confirmed(app, committed_client, mailbox):
    user = await committed_user()
    taken = await committed_user()
    await sign_in(committed_client, user["username"])
    new_email = "moved.here@example.org"

    wrong_password = await committed_client.post(
        f"{AUTH}/email/change-request", json={"new_email": new_email, "password": "Nope-nope-1"}
    )
    clash = await committed_client.post(
        f"{AUTH}/email/change-request",
        json={"new_email": taken["email"], "password": DEFAULT_PASSWORD},
    )
    asked = await committed_client.post(
        f"{AUTH}/email/change-request",
        json={"new_email": new_email.upper(), "password": DEFAULT_PASSWORD},
    )
    await settle()
    assert (await committed_client.get(ME)).json()["email"] == user["email"]  # not yet
    token = link_token(mailbox, new_email, "confirm-email-change")
    confirmed = await committed_client.post(f"{AUTH}/email/change-confirm", json={"token": token})
    await settle()

    assert wrong_password.status_code == 400
    # A taken address gets the same answer; its owner gets a notice, no link.
    assert clash.status_code == 202
    assert clash.json()["detail"] == asked.json()["detail"].replace(new_email, taken["email"])
    [notice_to_taken] = mailbox.sent_to(taken["email"])
    assert "already uses it" in " ".join(notice_to_taken.text.split())
    assert "token=" not in notice_to_taken.text
    assert asked.status_code == 202, asked.text
    assert confirmed.status_code == 200, confirmed.text
    me = (await committed_client.get(ME)).json()
    assert me["email"] == new_email
    assert me["is_verified"] is True
    [notice] = [m for m in mailbox.sent_to(user["email"]) if "changed" in m.subject]
    assert new_email in notice.text
    async with browser(app) as elsewhere:
        await sign_in(elsewhere, new_email)


async def test_an_email_change_link_dies_if_the_address_was_taken_meanwhile(
    committed_client, mailbox
):
    user = await committed_user()
    await sign_in(committed_client, user["username"])
    new_email = "wanted@example.org"
    await committed_client.post(
        f"{AUTH}/email/change-request", json={"new_email": new_email, "password": DEFAULT_PASSWORD}
    )
    await settle()
    token = link_token(mailbox, new_email, "confirm-email-change")
    await committed_user(email=new_email)  # someone signs up with it first

    response = await committed_client.post(f"{AUTH}/email/change-confirm", json={"token": token})

    assert response.status_code == 409
    assert (await committed_client.get(ME)).json()["email"] == user["email"]


async def test_a_reset_applies_the_password_rules_and_keeps_the_link_usable(
    committed_client, mailbox
):
    user = await committed_user()
    await committed_client.post(f"{AUTH}/password/reset-request", json={"email": user["email"]})
    await settle()
    token = link_token(mailbox, user["email"], "reset-password")

    weak = await committed_client.post(
        f"{AUTH}/password/reset-confirm",
        json={"token": token, "new_password": f"{user['username']}-Zq7!x"},
    )
    strong = await committed_client.post(
        f"{AUTH}/password/reset-confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert weak.status_code == 422
    [error] = weak.json()["detail"]
    assert error["loc"] == ["body", "new_password"]
    assert "username" in error["msg"]
    assert strong.status_code == 200, strong.text


async def test_a_login_checked_against_the_old_password_opens_no_session_after_a_reset(
    committed_client, monkeypatch
):
    """The race a reset must win: a login verifies the old password, the reset commits while
    that login is between its check and its session, and the login must not come back with
    a live session."""
    from src.infrastructure.auth.passwords import hash_password, verify_password
    from src.modules.auth import service as auth_service
    from src.modules.auth.sessions import end_sessions
    from src.modules.user.crud import crud_users

    user = await committed_user()

    async def verify_then_lose_the_race(password, stored_hash):
        result = await verify_password(password, stored_hash)
        async with get_sessionmaker()() as db:  # the reset, committed meanwhile
            new_hash = await hash_password(NEW_PASSWORD)
            await crud_users.update(db, {"hashed_password": new_hash}, id=user["id"], commit=False)
            await end_sessions(db, user_id=user["id"])
            await db.commit()
        return result

    monkeypatch.setattr(auth_service, "verify_password", verify_then_lose_the_race)
    response = await committed_client.post(
        f"{AUTH}/login", json={"username": user["username"], "password": DEFAULT_PASSWORD}
    )

    assert response.status_code == 401
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert (await committed_client.get(ME)).status_code == 401


async def test_email_change_requests_are_limited_per_target_address(
    committed_client, mailbox, monkeypatch
):
    monkeypatch.setattr(
        "src.modules.auth.account.routes.email_request_throttle",
        EmailRequestThrottle(address_limits="2/hour", ip_limits="100/hour"),
    )
    user = await committed_user()
    await sign_in(committed_client, user["username"])
    body = {"new_email": "victim@example.org", "password": DEFAULT_PASSWORD}

    statuses = [
        (await committed_client.post(f"{AUTH}/email/change-request", json=body)).status_code
        for _ in range(3)
    ]
    await settle()

    assert statuses == [202, 202, 429]
    assert len(mailbox.sent_to("victim@example.org")) == 2


async def test_email_requests_are_limited_per_client_ip(committed_client, mailbox, monkeypatch):
    monkeypatch.setattr(
        "src.modules.auth.account.routes.email_request_throttle",
        EmailRequestThrottle(address_limits="100/hour", ip_limits="2/hour"),
    )
    statuses = [
        (
            await committed_client.post(
                f"{AUTH}/email/verify-request", json={"email": f"someone{n}@example.com"}
            )
        ).status_code
        for n in range(3)
    ]

    assert statuses == [202, 202, 429]
