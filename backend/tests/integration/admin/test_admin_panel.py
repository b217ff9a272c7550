"""The admin panel (/admin, sqladmin) over HTTP: who gets in, CSRF on every write, no password
hash on any page, and the writes doing what the API's do (sessions end, keys revoked).

Real commits (sqladmin opens sessions of its own, not the test's rolled-back one): each test
creates its accounts and `clean_tables` empties the tables afterwards. The clients are plain
(no automatic CSRF header), so every form carries the token as a browser's would: the hidden
field, read from the page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from httpx import AsyncClient, Response
from sqlalchemy import select

from src.infrastructure.config import settings
from src.infrastructure.database.session import get_sessionmaker
from src.modules.audit.models import AuditEvent
from src.modules.auth.apikeys.models import ApiKey
from src.modules.tier.models import Tier
from src.modules.user.models import User
from tests.helpers.csrf import browser
from tests.helpers.factories import DEFAULT_PASSWORD, create_user
from tests.helpers.roles import grant, make_role, roles_of

pytestmark = pytest.mark.integration

_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def page_token(response: Response) -> str:
    found = _META.search(response.text)
    assert found, response.text[:500]
    return found.group(1)


@pytest_asyncio.fixture
async def accounts(app: Any, clean_tables: None) -> dict[str, dict[str, Any]]:
    async with get_sessionmaker()() as db:
        boss = await create_user(db, is_superuser=True)
        plain = await create_user(db)
        await db.commit()
    return {"boss": boss, "plain": plain}


@pytest_asyncio.fixture
async def admin(app: Any, accounts: dict[str, dict[str, Any]]) -> AsyncIterator[AsyncClient]:
    """A browser signed in to the admin panel as the superuser."""
    async with browser(app, csrf_aware=False) as client:
        response = await admin_login(client, accounts["boss"]["username"])
        assert response.status_code == 303, response.text
        yield client


async def admin_login(
    client: AsyncClient, username: str, password: str = DEFAULT_PASSWORD
) -> Response:
    token = page_token(await client.get("/admin/login"))
    return await client.post(
        "/admin/login", data={"username": username, "password": password, "csrf_token": token}
    )


async def post_form(client: AsyncClient, url: str, page_url: str, data: dict[str, Any]) -> Response:
    """Submit a form the way the page does: the token of the page it is on."""
    token = page_token(await client.get(page_url))
    return await client.post(url, data={**data, "csrf_token": token})


async def api_session(
    app: Any, username: str, password: str = DEFAULT_PASSWORD
) -> AsyncIterator[AsyncClient]:
    async with browser(app) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        yield client


async def admin_events(kind: str) -> list[AuditEvent]:
    """The audit rows of `kind` written through the admin panel (`via: admin`)."""
    async with get_sessionmaker()() as db:
        rows = (await db.scalars(select(AuditEvent).where(AuditEvent.kind == kind))).all()
    return [row for row in rows if (row.data or {}).get("via") == "admin"]


async def user_row(user_id: int) -> User:
    async with get_sessionmaker()() as db:
        row = await db.get(User, user_id)
        assert row is not None
        return row


async def test_unauthenticated_requests_are_sent_to_the_login_page(app: Any, accounts: Any) -> None:
    async with browser(app, csrf_aware=False) as client:
        bare = await client.get("/admin")
        assert (bare.status_code, bare.headers["location"]) == (307, "/admin/")
        for path in ("/admin/", "/admin/user/list", "/admin/user/edit/1", "/admin/user/export/csv"):
            response = await client.get(path)
            assert response.status_code == 302, path
            assert response.headers["location"].endswith("/admin/login")
        # A write without a session changes nothing either.
        response = await client.post("/admin/tier/create", data={"name": "gold"})
        assert response.status_code == 302
    async with get_sessionmaker()() as db:
        assert (await db.scalars(select(Tier).where(Tier.name == "gold"))).first() is None


async def test_a_superuser_signs_in_lists_and_searches_users(
    admin: AsyncClient, accounts: dict[str, dict[str, Any]]
) -> None:
    assert settings.SESSION_COOKIE_NAME in admin.cookies
    listing = await admin.get("/admin/user/list")
    assert listing.status_code == 200
    assert accounts["plain"]["username"] in listing.text
    assert accounts["boss"]["username"] in listing.text
    found = await admin.get("/admin/user/list", params={"search": accounts["plain"]["email"]})
    assert accounts["plain"]["username"] in found.text
    assert accounts["boss"]["username"] not in found.text
    # The admin's session is the app's: the API knows it.
    me = await admin.get("/api/v1/auth/me")
    assert me.json()["user"]["username"] == accounts["boss"]["username"]


async def test_a_plain_user_is_refused_and_keeps_no_session(
    app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    async with browser(app, csrf_aware=False) as client:
        response = await admin_login(client, accounts["plain"]["username"])
        assert response.status_code == 403
        assert "may not use the admin panel" in response.text
        assert settings.SESSION_COOKIE_NAME not in response.cookies
        assert (await client.get("/admin/user/list")).status_code == 302
    # Signed in through the API, the same user meets a 403 in the panel.
    async for client in api_session(app, accounts["plain"]["username"]):
        response = await client.get("/admin/user/list")
        assert response.status_code == 403
        assert accounts["boss"]["username"] not in response.text


async def test_wrong_passwords_get_the_login_error_and_then_the_throttle(
    app: Any, accounts: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", True)  # the throttle is on
    async with browser(app, csrf_aware=False) as client:
        response = await admin_login(client, accounts["boss"]["username"], "Wrong-Password-123")
        assert response.status_code == 401
        assert "Incorrect username or password" in response.text
        statuses = [
            (await admin_login(client, accounts["boss"]["username"], "Wrong-Password-123"))
            for _ in range(5)
        ]
        assert statuses[-1].status_code == 429
        assert int(statuses[-1].headers["retry-after"]) > 0
        # Throttled: even the right password is not checked.
        assert (await admin_login(client, accounts["boss"]["username"])).status_code == 429


async def test_the_login_form_needs_its_csrf_token(app: Any, accounts: Any) -> None:
    async with browser(app, csrf_aware=False) as client:
        await client.get("/admin/login")
        response = await client.post(
            "/admin/login",
            data={"username": accounts["boss"]["username"], "password": DEFAULT_PASSWORD},
        )
        assert response.status_code == 403
        assert settings.SESSION_COOKIE_NAME not in response.cookies
        cross_site = await client.post(
            "/admin/login",
            data={
                "username": accounts["boss"]["username"],
                "password": DEFAULT_PASSWORD,
                "csrf_token": client.cookies[settings.CSRF_COOKIE_NAME],
            },
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site.status_code == 403


async def test_every_write_needs_the_page_token(admin: AsyncClient, app: Any) -> None:
    create = "/admin/tier/create"
    assert (await admin.post(create, data={"name": "gold"})).status_code == 403
    wrong = await admin.post(create, data={"name": "gold", "csrf_token": "forged.token"})
    assert wrong.status_code == 403
    # A token of another browser (signed for another session) is refused too.
    async with browser(app, csrf_aware=False) as other:
        foreign = page_token(await other.get("/admin/login"))
    refused = await admin.post(create, data={"name": "gold", "csrf_token": foreign})
    assert refused.status_code == 403
    async with get_sessionmaker()() as db:
        assert (await db.scalars(select(Tier).where(Tier.name == "gold"))).first() is None

    created = await post_form(admin, create, create, {"name": "gold", "save": "Save"})
    assert created.status_code == 302, created.text
    async with get_sessionmaker()() as db:
        gold = (await db.scalars(select(Tier).where(Tier.name == "gold"))).one()
    # The delete dialog's request carries the token as a header.
    token = admin.cookies[settings.CSRF_COOKIE_NAME]
    assert (await admin.delete(f"/admin/tier/delete?pks={gold.id}")).status_code == 403
    deleted = await admin.delete(
        f"/admin/tier/delete?pks={gold.id}", headers={settings.CSRF_HEADER_NAME: token}
    )
    assert deleted.status_code == 200
    async with get_sessionmaker()() as db:
        assert await db.get(Tier, gold.id) is None


async def test_editing_a_tier_goes_through_the_tier_rules(admin: AsyncClient) -> None:
    async with get_sessionmaker()() as db:
        default = (
            await db.scalars(select(Tier).where(Tier.name == settings.DEFAULT_TIER_NAME))
        ).one()
    edit = f"/admin/tier/edit/{default.id}"
    refused = await post_form(admin, edit, edit, {"name": "renamed", "save": "Save"})
    assert refused.status_code == 400
    assert "cannot be renamed" in refused.text
    created = await post_form(admin, "/admin/tier/create", "/admin/tier/create", {"name": "gold"})
    assert created.status_code == 302
    async with get_sessionmaker()() as db:
        gold = (await db.scalars(select(Tier).where(Tier.name == "gold"))).one()
    edit = f"/admin/tier/edit/{gold.id}"
    changed = await post_form(admin, edit, edit, {"name": "platinum", "save": "Save"})
    assert changed.status_code == 302, changed.text
    assert (await admin.get("/api/v1/tiers/platinum")).status_code == 200
    # Each change is in the audit log as the admin's, the refused rename is not.
    boss = (await admin.get("/api/v1/users/me")).json()["id"]
    for kind in ("tier.created", "tier.updated"):
        (event,) = await admin_events(kind)
        assert event.actor_id == boss
        assert event.target_id == str(gold.id)
    assert (event.data or {})["name"] == "platinum"


async def test_no_page_shows_a_password_hash(
    admin: AsyncClient, accounts: dict[str, dict[str, Any]]
) -> None:
    hashes = [(await user_row(user["id"])).hashed_password for user in accounts.values()]
    plain_id = accounts["plain"]["id"]
    pages = [
        "/admin/",
        "/admin/user/list",
        f"/admin/user/list?search={accounts['plain']['username']}",
        f"/admin/user/details/{plain_id}",
        f"/admin/user/edit/{plain_id}",
        "/admin/user/export/csv",
        "/admin/user/export/json",
        "/admin/api-key/list",
    ]
    if settings.SESSION_BACKEND == "database":
        pages.append("/admin/user-session/list")
    for path in pages:
        response = await admin.get(path)
        assert response.status_code == 200, path
        for value in hashes:
            assert value not in response.text, path
        assert "argon2" not in response.text, path
        assert "hashed_password" not in response.text, path
        assert "token_hash" not in response.text, path
        assert "key_hash" not in response.text, path


async def test_a_new_password_follows_the_policy_and_ends_the_users_sessions(
    admin: AsyncClient, app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    plain = accounts["plain"]
    edit = f"/admin/user/edit/{plain['id']}"
    before = (await user_row(plain["id"])).hashed_password
    form = {"name": plain["name"], "tier_id": str(plain["tier_id"]), "is_verified": "y"}
    weak = await post_form(admin, edit, edit, {**form, "new_password": "password", "save": "Save"})
    assert weak.status_code == 400
    assert "password" in weak.text.lower()
    assert (await user_row(plain["id"])).hashed_password == before
    assert not (await user_row(plain["id"])).is_verified  # nothing of the refused save stayed

    new_password = "Copper-Meadow-Lantern-77"
    async for user in api_session(app, plain["username"]):
        saved = await post_form(
            admin, edit, edit, {**form, "new_password": new_password, "save": "Save"}
        )
        assert saved.status_code == 302, saved.text
        assert (await user.get("/api/v1/users/me")).status_code == 401
    row = await user_row(plain["id"])
    assert row.is_verified
    assert row.hashed_password.startswith("$argon2")
    async for _ in api_session(app, plain["username"], new_password):
        pass
    # The saved form is in the audit log (the refused one is not): what changed, and the
    # password by name only.
    (updated,) = await admin_events("user.updated")
    assert updated.data == {"fields": ["is_verified"], "via": "admin"}
    (changed,) = await admin_events("password.changed")
    assert (changed.actor_id, changed.target_user_id) == (accounts["boss"]["id"], plain["id"])
    assert new_password not in str(changed.data)


async def test_assigning_a_tier_that_does_not_exist_is_refused(
    admin: AsyncClient, accounts: dict[str, dict[str, Any]]
) -> None:
    plain = accounts["plain"]
    edit = f"/admin/user/edit/{plain['id']}"
    form = {"name": "Renamed", "tier_id": "999999", "save": "Save"}
    response = await post_form(admin, edit, edit, form)
    assert response.status_code == 400
    assert "No tier has the id 999999" in response.text
    assert (await user_row(plain["id"])).name == plain["name"]


async def test_actions_confirm_on_get_and_write_on_post(
    admin: AsyncClient, app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    plain = accounts["plain"]
    url = f"/admin/user/action/deactivate?pks={plain['id']}"
    async for user in api_session(app, plain["username"]):
        confirm = await admin.get(url)
        assert confirm.status_code == 200
        assert 'method="post"' in confirm.text
        assert not (await user_row(plain["id"])).is_deleted  # a link changes nothing
        assert (await admin.post(url)).status_code == 403  # nor a post without the token
        assert not (await user_row(plain["id"])).is_deleted
        done = await admin.post(url, data={"csrf_token": page_token(confirm)})
        assert done.status_code == 303
        assert (await user.get("/api/v1/users/me")).status_code == 401
    assert (await user_row(plain["id"])).is_deleted
    (event,) = await admin_events("user.deleted")  # the refused posts wrote none
    assert event.target_user_id == plain["id"]
    assert event.actor_id == accounts["boss"]["id"]


async def test_end_sessions_goes_through_the_session_store(
    app: Any, accounts: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key-value store (Redis in the production profile) has no rows: the action ends
    the sessions through the store's API."""
    backend = "redis" if settings.CACHE_BACKEND == "redis" else "memory"
    monkeypatch.setattr(settings, "SESSION_BACKEND", backend)
    async with browser(app, csrf_aware=False) as boss:
        assert (await admin_login(boss, accounts["boss"]["username"])).status_code == 303
        plain = accounts["plain"]
        async for user in api_session(app, plain["username"]):
            assert (await user.get("/api/v1/users/me")).status_code == 200
            url = f"/admin/user/action/end-sessions?pks={plain['id']}"
            done = await boss.post(url, data={"csrf_token": page_token(await boss.get(url))})
            assert done.status_code == 303
            assert (await user.get("/api/v1/users/me")).status_code == 401
        assert (await boss.get("/admin/user/list")).status_code == 200  # the admin's own stays
    (event,) = await admin_events("user.sessions_ended")
    assert event.target_user_id == plain["id"]


@pytest.mark.skipif(
    settings.SESSION_BACKEND != "database", reason="session rows exist in the database store"
)
async def test_revoking_a_session_row_ends_that_session(
    admin: AsyncClient, app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    async for user in api_session(app, accounts["plain"]["username"]):
        session_id = (await user.get("/api/v1/auth/me")).json()["session_id"]
        listing = await admin.get("/admin/user-session/list")
        assert session_id in listing.text
        url = f"/admin/user-session/action/revoke?pks={session_id}"
        done = await admin.post(url, data={"csrf_token": page_token(await admin.get(url))})
        assert done.status_code == 303
        assert (await user.get("/api/v1/users/me")).status_code == 401
    assert session_id not in (await admin.get("/admin/user-session/list")).text
    (event,) = await admin_events("auth.session_revoked")
    assert (event.target_id, event.target_user_id) == (session_id, accounts["plain"]["id"])


async def test_revoking_an_api_key_keeps_its_row(
    admin: AsyncClient, app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    async for user in api_session(app, accounts["plain"]["username"]):
        created = await user.post("/api/v1/api-keys", json={"name": "ci"})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
    async with browser(app) as caller:
        assert (await caller.get("/api/v1/users/me", headers={"X-API-Key": key})).status_code == 200
        listing = await admin.get("/admin/api-key/list")
        assert created.json()["prefix"] in listing.text
        assert key not in listing.text
        url = f"/admin/api-key/action/revoke?pks={key_id}"
        done = await admin.post(url, data={"csrf_token": page_token(await admin.get(url))})
        assert done.status_code == 303
        assert (await caller.get("/api/v1/users/me", headers={"X-API-Key": key})).status_code == 401
    async with get_sessionmaker()() as db:
        row = await db.get(ApiKey, key_id)
        assert row is not None
        assert row.revoked_at is not None
        assert not row.is_active
    (event,) = await admin_events("api_key.revoked")
    assert (event.target_id, event.target_user_id) == (str(key_id), accounts["plain"]["id"])


async def test_a_rate_limit_rule_is_added_through_the_rule_service(admin: AsyncClient) -> None:
    async with get_sessionmaker()() as db:
        tier = (await db.scalars(select(Tier).where(Tier.name == settings.DEFAULT_TIER_NAME))).one()
    create = "/admin/rate-limit/create"
    form = {
        "tier_id": str(tier.id),
        "path": "/api/v1/users/{username}",
        "max_requests": "5",
        "period_seconds": "60",
        "save": "Save",
    }
    assert (await post_form(admin, create, create, form)).status_code == 302
    again = await post_form(admin, create, create, form)
    assert again.status_code == 400  # the service's duplicate check
    rules = await admin.get(f"/api/v1/tiers/{tier.name}/rate-limits")
    assert [rule["path"] for rule in rules.json()["data"]] == ["/api/v1/users/{username}"]


async def test_sign_out_ends_the_session(admin: AsyncClient) -> None:
    confirm = await admin.get("/admin/logout")
    assert confirm.status_code == 200
    assert (await admin.get("/admin/user/list")).status_code == 200  # the GET ended nothing
    assert (await admin.post("/admin/logout")).status_code == 403
    session = admin.cookies[settings.SESSION_COOKIE_NAME]
    done = await admin.post("/admin/logout", data={"csrf_token": page_token(confirm)})
    assert done.status_code == 303
    assert done.headers["location"].endswith("/admin/login")
    admin.cookies.set(settings.SESSION_COOKIE_NAME, session)  # replaying the cookie: dead
    assert (await admin.get("/admin/user/list")).status_code == 302


async def test_admin_access_opens_the_panel_and_only_the_views_of_ones_permissions(
    app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    """A non-superuser with `admin.access` and `tier.manage` gets in and edits tiers, but the
    views it holds no permission for (users, API keys, audit) stay closed."""
    async with get_sessionmaker()() as db:
        await grant(db, accounts["plain"], "admin.access", "tier.manage")
    async with browser(app, csrf_aware=False) as client:
        response = await admin_login(client, accounts["plain"]["username"])
        assert response.status_code == 303, response.text
        created = await post_form(
            client, "/admin/tier/create", "/admin/tier/create", {"name": "bronze"}
        )
        assert created.status_code == 302, created.text
        for closed in ("/admin/user/list", "/admin/api-key/list", "/admin/audit-event/list"):
            assert (await client.get(closed)).status_code in (400, 403), closed
        index = await client.get("/admin/")
        assert "/admin/tier/list" in index.text
        assert "/admin/user/list" not in index.text
    (event,) = await admin_events("tier.created")
    assert event.actor_id == accounts["plain"]["id"]


async def test_roles_are_given_and_taken_back_from_the_users_view(
    admin: AsyncClient, app: Any, accounts: dict[str, dict[str, Any]]
) -> None:
    """Through the role service as the admin: the user's next request has the permission, the
    change is audited, and an unknown role is refused with nothing written."""
    plain = accounts["plain"]
    async with get_sessionmaker()() as db:
        role_id = await make_role(db, "user.read", name="readers")
    give = f"/admin/user/action/give-role?pks={plain['id']}"
    page = await admin.get(give)
    assert page.status_code == 200
    assert "readers" in page.text
    assert (await admin.post(give, data={"role_id": str(role_id)})).status_code == 403  # no token
    async for user in api_session(app, plain["username"]):
        assert (await user.get("/api/v1/users")).status_code == 403
        unknown = await admin.post(give, data={"role_id": "999999", "csrf_token": page_token(page)})
        assert unknown.status_code == 404
        done = await admin.post(
            give, data={"role_id": str(role_id), "csrf_token": page_token(page)}
        )
        assert done.status_code == 303, done.text
        assert (await user.get("/api/v1/users")).status_code == 200  # the next request has it

        take = f"/admin/user/action/take-role?pks={plain['id']}"
        page = await admin.get(take)
        done = await admin.post(
            take, data={"role_id": str(role_id), "csrf_token": page_token(page)}
        )
        assert done.status_code == 303, done.text
        assert (await user.get("/api/v1/users")).status_code == 403
    async with get_sessionmaker()() as db:
        assert await roles_of(db, plain["id"]) == []
    for kind in ("role.assigned", "role.unassigned"):
        (event,) = await admin_events(kind)  # the refused posts wrote none
        assert event.actor_id == accounts["boss"]["id"]
        assert event.target_user_id == plain["id"]


async def test_marking_users_verified_is_recorded_once(
    admin: AsyncClient, accounts: dict[str, dict[str, Any]]
) -> None:
    plain = accounts["plain"]
    url = f"/admin/user/action/verify?pks={plain['id']}"
    for _ in range(2):  # the second time changes nothing, so records nothing
        done = await admin.post(url, data={"csrf_token": page_token(await admin.get(url))})
        assert done.status_code == 303
    assert (await user_row(plain["id"])).is_verified
    (event,) = await admin_events("email.verified")
    assert (event.actor_id, event.target_user_id) == (accounts["boss"]["id"], plain["id"])
