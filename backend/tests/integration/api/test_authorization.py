"""Authorization matrix: every route under /api/v1/users and /api/v1/tiers, four callers.

Callers:
- anonymous: no session at all;
- self: a regular user acting on their own account (the target user);
- other: a regular user acting on someone else's account (the target user);
- superuser: a superuser acting on the target user.

Each route is called both with and without a trailing slash; the app answers both directly
(no 307 redirect), so the exact status is asserted for both spellings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient

from src.modules.audit.context import SYSTEM
from src.modules.tier.schemas import TierCreate
from src.modules.tier.service import TierService
from tests.helpers.csrf import CSRFAwareClient
from tests.helpers.factories import build_user_create_payload, create_user, login

API = "/api/v1"
ANON, SELF, OTHER, SUPER = "anonymous", "self", "other", "superuser"
CALLERS = (ANON, SELF, OTHER, SUPER)

TARGET_TIER = "gold"  # exists, nobody is on it: may be renamed, assigned and deleted


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # `{username}` is the target user, `{tier}` the target tier
    expected: dict[str, int]  # caller -> status
    body: Callable[[], dict[str, Any]] | None = field(default=None)


def _statuses(anonymous: int, self_: int, other: int, superuser: int) -> dict[str, int]:
    return {ANON: anonymous, SELF: self_, OTHER: other, SUPER: superuser}


ROUTES: tuple[Route, ...] = (
    # --- users -------------------------------------------------------------------------------
    Route("POST", "/users", _statuses(201, 201, 201, 201), build_user_create_payload),
    Route("GET", "/users", _statuses(401, 403, 403, 200)),
    Route("GET", "/users/me", _statuses(401, 200, 200, 200)),
    Route("GET", "/users/{username}", _statuses(200, 200, 200, 200)),
    Route(
        "PATCH",
        "/users/{username}",
        _statuses(401, 200, 403, 200),
        lambda: {"name": "Renamed Person"},
    ),
    Route("DELETE", "/users/{username}", _statuses(401, 204, 403, 204)),
    Route(
        "PATCH",
        "/users/{username}/tier",
        _statuses(401, 403, 403, 200),
        lambda: {"tier_name": TARGET_TIER},
    ),
    # --- tiers -------------------------------------------------------------------------------
    Route("GET", "/tiers", _statuses(200, 200, 200, 200)),
    Route("GET", "/tiers/{tier}", _statuses(200, 200, 200, 200)),
    Route("POST", "/tiers", _statuses(401, 403, 403, 201), lambda: {"name": "platinum"}),
    Route("PATCH", "/tiers/{tier}", _statuses(401, 403, 403, 200), lambda: {"name": "diamond"}),
    Route("DELETE", "/tiers/{tier}", _statuses(401, 403, 403, 204)),
)


def _matrix() -> list[Any]:
    cases = []
    for route in ROUTES:
        for caller in CALLERS:
            for slash in ("", "/"):
                shown = "with-slash" if slash else "no-slash"
                cases.append(
                    pytest.param(
                        route,
                        caller,
                        slash,
                        id=f"{caller}-{route.method} {route.path}{slash}-{shown}",
                    )
                )
    return cases


@dataclass
class Actors:
    target: dict[str, Any]
    other: dict[str, Any]
    superuser: dict[str, Any]

    def login_as(self, caller: str) -> dict[str, Any] | None:
        return {ANON: None, SELF: self.target, OTHER: self.other, SUPER: self.superuser}[caller]


@pytest_asyncio.fixture
async def actors(client: AsyncClient, db_session: Any) -> Actors:
    target = await create_user(db_session)
    other = await create_user(db_session)
    superuser = await create_user(db_session, is_superuser=True)
    await TierService().create(payload=TierCreate(name=TARGET_TIER), db=db_session, audit=SYSTEM)
    await db_session.commit()
    return Actors(target=target, other=other, superuser=superuser)


async def _as(client: AsyncClient, actors: Actors, caller: str) -> AsyncClient:
    user = actors.login_as(caller)
    if user is not None:
        await login(client, user["username"], user["password"])
    return client


@pytest.mark.integration
@pytest.mark.parametrize(("route", "caller", "slash"), _matrix())
async def test_authorization_matrix(
    client: AsyncClient, actors: Actors, route: Route, caller: str, slash: str
) -> None:
    await _as(client, actors, caller)
    path = API + route.path.format(username=actors.target["username"], tier=TARGET_TIER) + slash
    body = route.body() if route.body else None

    response = await client.request(route.method, path, json=body)

    expected = route.expected[caller]
    assert response.status_code == expected, (route.method, path, caller, response.text)
    if expected >= 400:
        assert isinstance(response.json()["detail"], str)
    elif expected != 204:
        assert response.json()


# --- what the matrix implies, checked explicitly -------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("PATCH", "", {"name": "Hacked"}, id="PATCH profile"),
        pytest.param("DELETE", "", None, id="DELETE account"),
        pytest.param("PATCH", "/tier", {"tier_name": TARGET_TIER}, id="PATCH tier"),
    ],
)
async def test_refused_writes_on_another_account_change_nothing(
    client: AsyncClient, actors: Actors, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    target = actors.target
    await login(client, actors.other["username"], actors.other["password"])

    refused = await client.request(method, f"{API}/users/{target['username']}{suffix}", json=body)
    assert refused.status_code == 403

    await login(client, target["username"], target["password"])
    me = await client.get(f"{API}/users/me")
    assert me.status_code == 200
    assert me.json()["name"] == target["name"]
    assert me.json()["tier_id"] == target["tier_id"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("PATCH", "/users/nobody-here", {"name": "X"}, id="PATCH unknown user"),
        pytest.param("DELETE", "/users/nobody-here", None, id="DELETE unknown user"),
        pytest.param(
            "PATCH", "/users/nobody-here/tier", {"tier_name": "gold"}, id="PATCH tier unknown"
        ),
        pytest.param("PATCH", "/tiers/no-such-tier", {"name": "x"}, id="PATCH unknown tier"),
        pytest.param("DELETE", "/tiers/no-such-tier", None, id="DELETE unknown tier"),
    ],
)
async def test_anonymous_gets_401_before_any_lookup(
    client: AsyncClient, actors: Actors, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, API + path, json=body)
    assert response.status_code == 401


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/users", None, id="GET users list"),
        pytest.param(
            "PATCH", "/users/nobody-here/tier", {"tier_name": "gold"}, id="PATCH tier unknown"
        ),
        pytest.param("POST", "/tiers", {"name": "sneaky"}, id="POST tier"),
        pytest.param("DELETE", "/tiers/no-such-tier", None, id="DELETE unknown tier"),
    ],
)
async def test_regular_user_gets_403_on_superuser_routes_before_any_lookup(
    client: AsyncClient, actors: Actors, method: str, path: str, body: dict[str, Any] | None
) -> None:
    await login(client, actors.target["username"], actors.target["password"])
    response = await client.request(method, API + path, json=body)
    assert response.status_code == 403


@pytest.mark.integration
async def test_a_forged_session_cookie_is_anonymous(client: AsyncClient, actors: Actors) -> None:
    client.cookies.set("session", "forged-session-token")
    assert (await client.get(f"{API}/users/me")).status_code == 401
    assert (await client.get(f"{API}/users")).status_code == 401
    response = await client.patch(f"{API}/users/{actors.target['username']}", json={"name": "X"})
    assert response.status_code == 401


@pytest.mark.integration
async def test_regular_user_cannot_grant_themselves_superuser(
    client: AsyncClient, actors: Actors
) -> None:
    target = actors.target
    await login(client, target["username"], target["password"])

    response = await client.patch(f"{API}/users/{target['username']}", json={"is_superuser": True})
    assert response.status_code == 422

    assert (await client.get(f"{API}/users")).status_code == 403
    assert (await client.get(f"{API}/users/me")).json()["is_superuser"] is False


@pytest.mark.integration
async def test_callers_in_separate_clients_keep_their_own_rights(
    app: Any, client: AsyncClient, actors: Actors
) -> None:
    """Several callers at once in one test: each client carries its own session."""
    await login(client, actors.superuser["username"], actors.superuser["password"])
    async with CSRFAwareClient(transport=ASGITransport(app=app), base_url="http://test") as user:
        await login(user, actors.other["username"], actors.other["password"])

        assert (await client.get(f"{API}/users/")).status_code == 200
        assert (await user.get(f"{API}/users/")).status_code == 403
        target = actors.target["username"]
        assert (await user.delete(f"{API}/users/{target}/")).status_code == 403
        assert (await client.delete(f"{API}/users/{target}/")).status_code == 204
        assert (await user.get(f"{API}/users/{target}")).status_code == 404


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/api/v1/users/me/", 401, id="users-me-slash"),
        pytest.param("/api/v1/users/me", 401, id="users-me-no-slash"),
        pytest.param("/api/v1/tiers/", 200, id="tiers-slash"),
        pytest.param("/api/v1/tiers", 200, id="tiers-no-slash"),
        pytest.param("/api/v1/users/", 401, id="users-slash"),
        pytest.param("/api/v1/users", 401, id="users-no-slash"),
    ],
)
async def test_trailing_slash_is_never_redirected(
    client: AsyncClient, path: str, expected: int
) -> None:
    response = await client.get(path, follow_redirects=False)
    assert response.status_code == expected
    assert "location" not in response.headers
