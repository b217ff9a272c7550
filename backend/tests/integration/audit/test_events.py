"""Each security change writes its audit row in its own transaction, with the request's actor,
target, IP, User-Agent and request id; refused changes write none; no row holds a secret.

Through HTTP on the `client` fixture (one rolled-back test transaction): a service's commit
releases a savepoint, so what a request committed is visible here and what it rolled back is
not. `test_transactions.py` covers real commits (a failed login, a failing commit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest
from sqlalchemy import update

from src.infrastructure.config import settings
from src.infrastructure.ratelimit import parse_limits
from src.modules.audit.context import SYSTEM
from src.modules.auth import tokens
from src.modules.auth.mfa import service as mfa_service
from src.modules.auth.throttle import login_throttle
from src.modules.auth.tokens import Purpose
from src.modules.user.crud import crud_users
from src.modules.user.models import User
from src.modules.user.service import UserService
from tests.conftest import SUPERUSER
from tests.helpers.csrf import browser
from tests.helpers.factories import DEFAULT_PASSWORD, create_user, login
from tests.helpers.roles import grant
from tests.integration.audit.helpers import (
    assert_no_secret,
    assert_request,
    events,
    request_headers,
    the_event,
)

pytestmark = pytest.mark.integration

AUTH = "/api/v1/auth"
NEW_PASSWORD = "Brand-new-passphrase-9"


async def full_row(db, user_id: int) -> dict[str, Any]:
    row = await crud_users.get(db, id=user_id)
    assert row is not None
    return row


async def superuser_id(db) -> int:
    return int((await crud_users.get(db, username=SUPERUSER["username"]))["id"])


# --- sign-in -------------------------------------------------------------------------------------


async def test_login_success_and_each_failure_reason(client, db_session):
    user = await create_user(db_session)
    gone = await create_user(db_session)
    await db_session.execute(update(User).where(User.id == gone["id"]).values(is_deleted=True))
    await db_session.commit()

    attempts = [
        ({"username": user["username"], "password": "Wrong-password-123"}, 401),
        ({"username": "nobody-at-all", "password": DEFAULT_PASSWORD}, 401),
        ({"username": gone["username"], "password": DEFAULT_PASSWORD}, 401),
        ({"username": user["email"], "password": DEFAULT_PASSWORD}, 200),
    ]
    sent = []
    for body, status in attempts:
        headers = request_headers()
        response = await client.post(f"{AUTH}/login", json=body, headers=headers)
        assert response.status_code == status, response.text
        sent.append(headers)

    failed = await events(db_session, "auth.login.failed")
    assert [(e.reason, e.target_user_id, e.outcome) for e in failed] == [
        ("bad_password", user["id"], "failure"),
        ("unknown_account", None, "failure"),
        ("inactive", gone["id"], "failure"),
    ]
    for event, headers in zip(failed, sent, strict=False):
        assert_request(event, headers, actor_id=None)
        assert event.data == {"method": "password"}
    succeeded = await the_event(db_session, "auth.login.succeeded")
    assert_request(succeeded, sent[3], actor_id=user["id"])
    assert (succeeded.target_type, succeeded.target_id) == ("user", str(user["id"]))
    assert succeeded.data == {"method": "password"}
    assert_no_secret(await events(db_session), "Wrong-password-123", DEFAULT_PASSWORD)


async def test_a_throttled_login_is_recorded(client, db_session, monkeypatch):
    # 5 failures a day, not the shipped 5 a minute: six attempts that straddle a minute's
    # window count about one less (a sliding window counter), and the sixth got a 401.
    monkeypatch.setattr(login_throttle, "account_limits", parse_limits("5/day"))
    user = await create_user(db_session)
    statuses = []
    for _ in range(6):  # the account allows 5 failures
        body = {"username": user["username"], "password": "Wrong-password-123"}
        statuses.append((await client.post(f"{AUTH}/login", json=body)).status_code)

    assert statuses == [401] * 5 + [429]
    reasons = [e.reason for e in await events(db_session, "auth.login.failed")]
    assert reasons == ["bad_password"] * 5 + ["throttled"]


async def test_logout_logout_all_and_a_revoked_session(app, client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    async with browser(app) as other:
        await login(other, user["username"])
        sessions = (await client.get(f"{AUTH}/sessions")).json()
        other_id = next(s["id"] for s in sessions if not s["current"])
        mine = next(s["id"] for s in sessions if s["current"])

        revoke_headers = request_headers()
        revoked = await client.delete(f"{AUTH}/sessions/{other_id}", headers=revoke_headers)
        assert revoked.status_code == 204
        logout_headers = request_headers()
        assert (await client.post(f"{AUTH}/logout", headers=logout_headers)).status_code == 204
        # A cookie whose session is gone ends nothing: no row.
        assert (await other.post(f"{AUTH}/logout")).status_code == 204

    event = await the_event(db_session, "auth.session_revoked")
    assert_request(event, revoke_headers, actor_id=user["id"])
    assert (event.target_type, event.target_id, event.target_user_id) == (
        "session",
        other_id,
        user["id"],
    )
    event = await the_event(db_session, "auth.logout")
    assert_request(event, logout_headers, actor_id=user["id"])
    assert (event.target_type, event.target_id, event.target_user_id) == (
        "session",
        mine,
        user["id"],
    )

    await login(client, user["username"])
    headers = request_headers()
    assert (await client.post(f"{AUTH}/logout-all", headers=headers)).status_code == 204
    event = await the_event(db_session, "auth.logout_all")
    assert_request(event, headers, actor_id=user["id"])
    assert event.target_user_id == user["id"]


# --- credentials and address ---------------------------------------------------------------------


async def test_password_change_and_a_refused_one(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    refused = await client.post(
        f"{AUTH}/change-password",
        json={"current_password": "Not-my-password-1", "new_password": NEW_PASSWORD},
    )
    assert refused.status_code == 400
    assert await events(db_session, "password.changed") == []

    headers = request_headers()
    changed = await client.post(
        f"{AUTH}/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )

    assert changed.status_code == 200, changed.text
    event = await the_event(db_session, "password.changed")
    assert_request(event, headers, actor_id=user["id"])
    assert event.target_user_id == user["id"]
    assert_no_secret(await events(db_session), DEFAULT_PASSWORD, NEW_PASSWORD)


async def test_reset_verification_and_email_change_through_their_links(client, db_session):
    user = await create_user(db_session)
    row = await full_row(db_session, user["id"])
    verify = await tokens.issue(db_session, user=row, purpose=Purpose.VERIFY_EMAIL, ttl_seconds=600)
    await db_session.commit()
    verify_headers = request_headers()
    response = await client.post(
        f"{AUTH}/email/verify-confirm", json={"token": verify}, headers=verify_headers
    )
    assert response.status_code == 200, response.text
    # A used link is refused: no second row.
    again = await client.post(f"{AUTH}/email/verify-confirm", json={"token": verify})
    assert again.status_code == 400

    reset = await tokens.issue(
        db_session,
        user=await full_row(db_session, user["id"]),
        purpose=Purpose.RESET_PASSWORD,
        ttl_seconds=600,
    )
    await db_session.commit()
    reset_headers = request_headers()
    response = await client.post(
        f"{AUTH}/password/reset-confirm",
        json={"token": reset, "new_password": NEW_PASSWORD},
        headers=reset_headers,
    )
    assert response.status_code == 200, response.text

    await login(client, user["username"], NEW_PASSWORD)
    request_change_headers = request_headers()
    response = await client.post(
        f"{AUTH}/email/change-request",
        json={"new_email": "moved@example.org", "password": NEW_PASSWORD},
        headers=request_change_headers,
    )
    assert response.status_code == 202, response.text
    change = await tokens.issue(
        db_session,
        user=await full_row(db_session, user["id"]),
        purpose=Purpose.CHANGE_EMAIL,
        ttl_seconds=600,
        new_email="moved@example.org",
    )
    await db_session.commit()
    confirm_headers = request_headers()
    response = await client.post(
        f"{AUTH}/email/change-confirm", json={"token": change}, headers=confirm_headers
    )
    assert response.status_code == 200, response.text

    # Link holders are anonymous callers: the account acted, having proved its mailbox.
    for kind, headers in (
        ("email.verified", verify_headers),
        ("password.reset", reset_headers),
        ("email.changed", confirm_headers),
    ):
        event = await the_event(db_session, kind)
        assert_request(event, headers, actor_id=user["id"])
        assert event.target_user_id == user["id"]
    requested = await the_event(db_session, "email.change_requested")
    assert_request(requested, request_change_headers, actor_id=user["id"])
    assert requested.data == {"new_email": "moved@example.org"}
    changed = await the_event(db_session, "email.changed")
    assert changed.data == {"old_email": user["email"], "new_email": "moved@example.org"}
    assert_no_secret(await events(db_session), verify, reset, change, NEW_PASSWORD)


# --- MFA -----------------------------------------------------------------------------------------


async def test_mfa_enable_sign_in_recovery_codes_and_disable(app, client, db_session, monkeypatch):
    now = datetime.now(UTC)
    monkeypatch.setattr(mfa_service, "utcnow", lambda: now)
    user = await create_user(db_session)
    await login(client, user["username"])
    enrolled = await client.post(f"{AUTH}/mfa/enroll", json={"password": DEFAULT_PASSWORD})
    secret = enrolled.json()["secret"]
    enable_headers = request_headers()
    confirmed = await client.post(
        f"{AUTH}/mfa/confirm",
        json={"code": pyotp.TOTP(secret).at(now)},
        headers=enable_headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]

    async with browser(app) as phone:
        first = await phone.post(
            f"{AUTH}/login", json={"username": user["username"], "password": DEFAULT_PASSWORD}
        )
        assert first.json() == {"mfa_required": True}
        wrong_headers = request_headers()
        wrong = await phone.post(
            f"{AUTH}/mfa/verify", json={"code": "000000"}, headers=wrong_headers
        )
        assert wrong.status_code == 401
        verify_headers = request_headers()
        verified = await phone.post(
            f"{AUTH}/mfa/verify", json={"code": codes[0]}, headers=verify_headers
        )
        assert verified.status_code == 200, verified.text

    regen_headers = request_headers()
    regenerated = await client.post(
        f"{AUTH}/mfa/recovery-codes", json={"code": codes[1]}, headers=regen_headers
    )
    assert regenerated.status_code == 200, regenerated.text
    new_codes = regenerated.json()["recovery_codes"]
    disable_headers = request_headers()
    disabled = await client.post(
        f"{AUTH}/mfa/disable",
        json={"password": DEFAULT_PASSWORD, "code": new_codes[0]},
        headers=disable_headers,
    )
    assert disabled.status_code == 204, disabled.text

    uid = user["id"]
    assert_request(await the_event(db_session, "mfa.enabled"), enable_headers, actor_id=uid)
    pending = await the_event(db_session, "auth.login.mfa_required")
    assert (pending.outcome, pending.reason, pending.actor_id) == ("pending", "mfa_required", uid)
    [failed] = [e for e in await events(db_session, "auth.login.failed")]
    assert_request(failed, wrong_headers, actor_id=None)
    assert (failed.reason, failed.target_user_id) == ("mfa_failed", uid)
    signed_in = [
        e for e in await events(db_session, "auth.login.succeeded") if e.data["method"] == "mfa"
    ]
    assert len(signed_in) == 1
    assert_request(signed_in[0], verify_headers, actor_id=uid)
    assert signed_in[0].data == {"method": "mfa", "factor": "recovery_code"}
    used = await events(db_session, "mfa.recovery_code_used")
    assert [e.data["during"] for e in used] == ["sign_in", "regenerate", "disable"]
    assert [e.request_id for e in used] == [
        h["X-Request-ID"] for h in (verify_headers, regen_headers, disable_headers)
    ]
    event = await the_event(db_session, "mfa.recovery_codes_regenerated")
    assert_request(event, regen_headers, actor_id=uid)
    assert_request(await the_event(db_session, "mfa.disabled"), disable_headers, actor_id=uid)
    every_code = [code for code in codes + new_codes]
    assert_no_secret(await events(db_session), secret, DEFAULT_PASSWORD, *every_code)
    assert_no_secret(await events(db_session), *(c.replace("-", "") for c in every_code))


# --- API keys ------------------------------------------------------------------------------------


async def test_api_key_create_update_revoke_and_refusals(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    create_headers = request_headers()
    created = await client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["read", "write"]}, headers=create_headers
    )
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    widened = await client.patch(f"/api/v1/api-keys/{key_id}", json={"expires_at": None})
    assert widened.status_code == 422
    assert await events(db_session, "api_key.updated") == []

    update_headers = request_headers()
    narrowed = await client.patch(
        f"/api/v1/api-keys/{key_id}",
        json={"scopes": ["read"], "is_active": False},
        headers=update_headers,
    )
    assert narrowed.status_code == 200, narrowed.text
    revoke_headers = request_headers()
    assert (
        await client.delete(f"/api/v1/api-keys/{key_id}", headers=revoke_headers)
    ).status_code == 204
    assert (await client.delete(f"/api/v1/api-keys/{key_id}")).status_code == 204  # idempotent

    for kind, headers in (
        ("api_key.created", create_headers),
        ("api_key.updated", update_headers),
        ("api_key.revoked", revoke_headers),
    ):
        event = await the_event(db_session, kind)
        assert_request(event, headers, actor_id=user["id"])
        assert (event.target_type, event.target_id, event.target_user_id) == (
            "api_key",
            str(key_id),
            user["id"],
        )
    created_event = await the_event(db_session, "api_key.created")
    assert created_event.data["name"] == "ci"
    assert created_event.data["scopes"] == ["read", "write"]
    _, prefix, secret = key.split("_", 2)
    assert created_event.data["prefix"] == prefix
    updated = await the_event(db_session, "api_key.updated")
    assert updated.data == {"changes": {"scopes": ["read"], "is_active": False}}
    assert_no_secret(await events(db_session), key, secret)


# --- administration ------------------------------------------------------------------------------


async def test_tier_and_rate_limit_changes(superuser_client, db_session):
    client = superuser_client
    admin = await superuser_id(db_session)
    headers = {}
    headers["tier.created"] = request_headers()
    response = await client.post(
        "/api/v1/tiers", json={"name": "gold"}, headers=headers["tier.created"]
    )
    assert response.status_code == 201, response.text
    tier_id = response.json()["id"]
    assert (await client.post("/api/v1/tiers", json={"name": "gold"})).status_code == 409
    headers["tier.updated"] = request_headers()
    response = await client.patch(
        "/api/v1/tiers/gold", json={"name": "platinum"}, headers=headers["tier.updated"]
    )
    assert response.status_code == 200, response.text

    rules = "/api/v1/tiers/platinum/rate-limits"
    rule = {"path": "/api/v1/users/me", "max_requests": 5, "period_seconds": 60}
    headers["rate_limit.created"] = request_headers()
    response = await client.post(rules, json=rule, headers=headers["rate_limit.created"])
    assert response.status_code == 201, response.text
    rule_id = response.json()["id"]
    headers["rate_limit.updated"] = request_headers()
    response = await client.patch(
        f"{rules}/{rule_id}", json={"max_requests": 9}, headers=headers["rate_limit.updated"]
    )
    assert response.status_code == 200, response.text
    headers["rate_limit.deleted"] = request_headers()
    response = await client.delete(f"{rules}/{rule_id}", headers=headers["rate_limit.deleted"])
    assert response.status_code == 204
    headers["tier.deleted"] = request_headers()
    response = await client.delete("/api/v1/tiers/platinum", headers=headers["tier.deleted"])
    assert response.status_code == 204

    for kind, sent in headers.items():
        event = await the_event(db_session, kind)  # one each: the 409 wrote none
        assert_request(event, sent, actor_id=admin)
        expected = (
            ("tier", str(tier_id)) if kind.startswith("tier") else ("rate_limit", str(rule_id))
        )
        assert (event.target_type, event.target_id) == expected
    assert (await the_event(db_session, "tier.updated")).data == {
        "old_name": "gold",
        "name": "platinum",
    }
    assert (await the_event(db_session, "rate_limit.updated")).data == {
        "tier": "platinum",
        "path": "/api/v1/users/me",
        "max_requests": 9,
        "period_seconds": 60,
    }


async def test_role_changes_and_refused_ones(client, db_session):
    """Each role change is recorded with its actor, and a refused one (a permission the caller
    lacks, a duplicate name, a role not held) writes no row."""
    manager = await create_user(db_session, username="rolemanager")
    await grant(
        db_session,
        manager,
        "role.create",
        "role.update",
        "role.delete",
        "role.assign",
        "user.read",
    )
    member = await create_user(db_session, username="member")
    await login(client, manager["username"])
    headers: dict[str, dict[str, str]] = {}

    headers["role.created"] = request_headers()
    response = await client.post(
        "/api/v1/roles",
        json={"name": "readers", "permissions": ["user.read"]},
        headers=headers["role.created"],
    )
    assert response.status_code == 201, response.text
    role_id = response.json()["id"]
    refused = await client.post(  # not held by the caller
        "/api/v1/roles", json={"name": "auditors", "permissions": ["audit.read"]}
    )
    assert refused.status_code == 403
    duplicate = await client.post("/api/v1/roles", json={"name": "readers", "permissions": []})
    assert duplicate.status_code == 409

    headers["role.updated"] = request_headers()
    response = await client.patch(
        f"/api/v1/roles/{role_id}",
        json={"description": "read users"},
        headers=headers["role.updated"],
    )
    assert response.status_code == 200, response.text
    headers["role.permissions_changed"] = request_headers()
    response = await client.put(
        f"/api/v1/roles/{role_id}/permissions",
        json={"permissions": ["role.assign", "user.read"]},
        headers=headers["role.permissions_changed"],
    )
    assert response.status_code == 200, response.text
    headers["role.assigned"] = request_headers()
    response = await client.put(
        f"/api/v1/users/member/roles/{role_id}", headers=headers["role.assigned"]
    )
    assert response.status_code == 204, response.text
    headers["role.unassigned"] = request_headers()
    response = await client.delete(
        f"/api/v1/users/member/roles/{role_id}", headers=headers["role.unassigned"]
    )
    assert response.status_code == 204, response.text
    not_held = await client.delete(f"/api/v1/users/member/roles/{role_id}")
    assert not_held.status_code == 404
    headers["role.deleted"] = request_headers()
    response = await client.delete(f"/api/v1/roles/{role_id}", headers=headers["role.deleted"])
    assert response.status_code == 204, response.text

    for kind, sent in headers.items():
        event = await the_event(db_session, kind)  # one each: the refusals wrote none
        assert_request(event, sent, actor_id=manager["id"])
        if kind in ("role.assigned", "role.unassigned"):
            assert (event.target_type, event.target_id) == ("user", str(member["id"]))
            assert event.target_user_id == member["id"]
            assert event.data == {"role_id": role_id, "role": "readers"}
        else:
            assert (event.target_type, event.target_id) == ("role", str(role_id))
    assert (await the_event(db_session, "role.created")).data == {
        "name": "readers",
        "permissions": ["user.read"],
    }
    assert (await the_event(db_session, "role.permissions_changed")).data == {
        "added": ["role.assign"],
        "removed": [],
    }
    assert (await the_event(db_session, "role.updated")).data == {"description": "read users"}
    assert (await the_event(db_session, "role.deleted")).data == {
        "name": "readers",
        "permissions": ["role.assign", "user.read"],
    }


async def test_user_tier_password_deletion_and_superuser_changes(superuser_client, db_session):
    client = superuser_client
    admin = await superuser_id(db_session)
    user = await create_user(db_session)
    assert (await client.post("/api/v1/tiers", json={"name": "pro"})).status_code == 201

    tier_headers = request_headers()
    response = await client.patch(
        f"/api/v1/users/{user['username']}/tier", json={"tier_name": "pro"}, headers=tier_headers
    )
    assert response.status_code == 200, response.text
    password_headers = request_headers()
    response = await client.patch(
        f"/api/v1/users/{user['username']}",
        json={"password": NEW_PASSWORD},
        headers=password_headers,
    )
    assert response.status_code == 200, response.text
    delete_headers = request_headers()
    response = await client.delete(f"/api/v1/users/{user['username']}", headers=delete_headers)
    assert response.status_code == 204

    event = await the_event(db_session, "user.tier_changed")
    assert_request(event, tier_headers, actor_id=admin)
    assert event.target_user_id == user["id"]
    assert event.data["tier"] == "pro"
    event = await the_event(db_session, "password.changed")
    assert_request(event, password_headers, actor_id=admin)
    assert (event.target_user_id, event.data) == (user["id"], {"by_superuser": True})
    event = await the_event(db_session, "user.deleted")
    assert_request(event, delete_headers, actor_id=admin)
    assert event.target_user_id == user["id"]

    # Superuser changes come from the CLI: no request, marked as such.
    other = await create_user(db_session)
    await UserService().set_superuser(user_id=other["id"], value=True, db=db_session)
    await UserService().set_superuser(user_id=other["id"], value=False, db=db_session, audit=SYSTEM)
    granted = await events(db_session, "user.superuser_granted")
    # The fixture's superuser was created through the service as well.
    assert [(e.target_user_id, e.data) for e in granted] == [
        (admin, {"new_user": True, "via": "cli"}),
        (other["id"], {"via": "cli"}),
    ]
    revoked = await the_event(db_session, "user.superuser_revoked")
    assert (revoked.target_user_id, revoked.actor_id, revoked.ip) == (other["id"], None, None)
    assert_no_secret(await events(db_session), NEW_PASSWORD, SUPERUSER["password"])


async def test_reads_write_nothing(client, db_session):
    user = await create_user(db_session)
    await login(client, user["username"])
    before = len(await events(db_session))
    for path in ("/api/v1/users/me", f"{AUTH}/me", f"{AUTH}/sessions", "/api/v1/api-keys"):
        assert (await client.get(path)).status_code == 200
    assert len(await events(db_session)) == before


def test_settings_bound_the_retention():
    from pydantic import ValidationError

    from src.infrastructure.config.settings import Settings

    assert settings.AUDIT_RETENTION_DAYS == 365
    with pytest.raises(ValidationError):
        Settings(AUDIT_RETENTION_DAYS=0)
