"""The routes wired with `@cache` (public profile, tiers), on the memory backend and on the real
local Redis: hits, invalidation by every write, per-caller keys, stampedes, a dead Redis."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header
from httpx import ASGITransport, AsyncClient
from sqlalchemy import update

from src.infrastructure.cache import cache
from src.infrastructure.config import settings
from src.modules.tier.models import Tier
from src.modules.tier.service import TierService
from src.modules.user.models import User
from src.modules.user.service import UserService
from tests.helpers.factories import build_user_create_payload, create_user, login
from tests.integration.test_cache_redis import CACHE_LOGGER, closed_port, point_cache_at

pytestmark = pytest.mark.integration
USERS = "/api/v1/users"
TIERS = "/api/v1/tiers"


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(settings, "CACHE_ENABLED", True)
    if request.param == "redis":
        point_cache_at(monkeypatch, request.getfixturevalue("clean_redis"))
    else:
        monkeypatch.setattr(settings, "CACHE_BACKEND", "memory")
    return str(request.param)


def count_calls(
    monkeypatch: pytest.MonkeyPatch, cls: type, name: str, delay: float = 0
) -> list[int]:
    """Count (and optionally slow down) calls of `cls.name`; the list's length is the count."""
    calls: list[int] = []
    original = getattr(cls, name)

    async def counted(self: Any, **kwargs: Any) -> Any:
        calls.append(1)
        await asyncio.sleep(delay)
        return await original(self, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


async def rename_behind_the_cache(db_session, model: type, where: Any, **values: Any) -> None:
    """A write that does not invalidate (as a stray SQL script would): only a hit hides it."""
    await db_session.execute(update(model).where(where).values(**values))
    await db_session.commit()


# --- public profile --------------------------------------------------------------------------


async def test_profile_is_served_from_the_cache_until_the_user_changes(
    client, db_session, cache_backend, monkeypatch
):
    user = await create_user(db_session, name="Alice Old")
    reads = count_calls(monkeypatch, UserService, "get_public_profile")
    path = f"{USERS}/{user['username']}"

    first = await client.get(path)
    await rename_behind_the_cache(db_session, User, User.id == user["id"], name="Sneaky")
    second = await client.get(f"{USERS}/{user['username'].upper()}/")  # same user, same key

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()  # a hit answers exactly like the miss
    assert first.json() == {
        "username": user["username"],
        "name": "Alice Old",
        "created_at": first.json()["created_at"],
    }
    assert len(reads) == 1

    await login(client, user["username"])
    assert (await client.patch(path, json={"name": "Alice New"})).status_code == 200

    assert (await client.get(path)).json()["name"] == "Alice New"


async def test_username_change_drops_the_old_profile(client, db_session, cache_backend):
    user = await create_user(db_session)
    await login(client, user["username"])
    assert (await client.get(f"{USERS}/{user['username']}")).status_code == 200

    response = await client.patch(f"{USERS}/{user['username']}", json={"username": "moved.on"})

    assert response.status_code == 200
    assert (await client.get(f"{USERS}/{user['username']}")).status_code == 404
    assert (await client.get(f"{USERS}/moved.on")).json()["username"] == "moved.on"


async def test_soft_deleted_profile_is_gone_at_once(client, db_session, cache_backend):
    user = await create_user(db_session)
    await login(client, user["username"])
    assert (await client.get(f"{USERS}/{user['username']}")).status_code == 200

    assert (await client.delete(f"{USERS}/{user['username']}")).status_code == 204

    assert (await client.get(f"{USERS}/{user['username']}")).status_code == 404


async def test_tier_assignment_drops_the_profile(superuser_client, db_session, cache_backend):
    user = await create_user(db_session)
    path = f"{USERS}/{user['username']}"
    assert (await superuser_client.post(f"{TIERS}/", json={"name": "gold"})).status_code == 201
    await superuser_client.get(path)
    await rename_behind_the_cache(db_session, User, User.id == user["id"], name="Changed")

    response = await superuser_client.patch(f"{path}/tier", json={"tier_name": "gold"})

    assert response.status_code == 200
    assert (await superuser_client.get(path)).json()["name"] == "Changed"


async def test_a_missing_profile_is_not_cached(client, db_session, cache_backend):
    assert (await client.get(f"{USERS}/later_user")).status_code == 404

    await create_user(db_session, username="later_user")

    assert (await client.get(f"{USERS}/later_user")).status_code == 200


# --- tiers -----------------------------------------------------------------------------------


async def tier_names(client, **params: Any) -> list[str]:
    response = await client.get(f"{TIERS}/", params=params)
    assert response.status_code == 200, response.text
    return [tier["name"] for tier in response.json()["data"]]


async def test_tier_list_is_cached_and_every_tier_write_drops_every_page(
    superuser_client, db_session, cache_backend, monkeypatch
):
    lists = count_calls(monkeypatch, TierService, "list")
    default = settings.DEFAULT_TIER_NAME
    assert await tier_names(superuser_client) == [default]
    assert await tier_names(superuser_client, page=2, items_per_page=1) == []
    assert await tier_names(superuser_client) == [default]
    assert len(lists) == 2  # two pages computed, the repeat was a hit

    assert (await superuser_client.post(f"{TIERS}/", json={"name": "gold"})).status_code == 201
    assert await tier_names(superuser_client) == [default, "gold"]
    assert await tier_names(superuser_client, page=2, items_per_page=1) == ["gold"]

    assert (await superuser_client.patch(f"{TIERS}/gold", json={"name": "platinum"})).is_success
    assert await tier_names(superuser_client) == [default, "platinum"]

    assert (await superuser_client.delete(f"{TIERS}/platinum")).status_code == 204
    assert await tier_names(superuser_client) == [default]
    assert await tier_names(superuser_client, page=2, items_per_page=1) == []


async def test_one_tier_is_cached_and_dropped_by_a_rename(
    superuser_client, db_session, cache_backend
):
    created = (await superuser_client.post(f"{TIERS}/", json={"name": "gold"})).json()
    assert (await superuser_client.get(f"{TIERS}/gold")).json() == created
    await rename_behind_the_cache(db_session, Tier, Tier.id == created["id"], name="bronze")
    assert (await superuser_client.get(f"{TIERS}/gold")).json() == created  # a hit

    response = await superuser_client.patch(f"{TIERS}/bronze", json={"name": "silver"})

    assert response.status_code == 200
    assert (await superuser_client.get(f"{TIERS}/gold")).status_code == 404
    assert (await superuser_client.get(f"{TIERS}/silver")).json()["id"] == created["id"]


async def test_creating_the_default_tier_at_first_sign_up_drops_the_tier_list(
    client, cache_backend
):
    assert await tier_names(client) == []  # a fresh database: no tier yet, and cached

    payload = build_user_create_payload()
    assert (await client.post(f"{USERS}/", json=payload)).status_code == 201

    assert await tier_names(client) == [settings.DEFAULT_TIER_NAME]


# --- switches and callers ----------------------------------------------------------------------


async def test_cache_disabled_reads_the_database_every_time(
    client, db_session, cache_backend, monkeypatch
):
    monkeypatch.setattr(settings, "CACHE_ENABLED", False)
    user = await create_user(db_session)
    reads = count_calls(monkeypatch, UserService, "get_public_profile")

    for _ in range(3):
        assert (await client.get(f"{USERS}/{user['username']}")).status_code == 200

    assert len(reads) == 3


def _caller(x_user: Annotated[str, Header()]) -> dict[str, str]:
    return {"id": x_user}


summaries_computed: list[str] = []
per_caller_app = FastAPI()


@per_caller_app.get("/me/summary")
@cache("summary:{user[id]}")
async def _summary(user: Annotated[dict[str, str], Depends(_caller)]) -> dict[str, str]:
    summaries_computed.append(user["id"])
    return {"owner": user["id"]}


async def test_per_caller_keys_never_serve_one_callers_data_to_another(cache_backend):
    summaries_computed.clear()
    transport = ASGITransport(app=per_caller_app)
    async with AsyncClient(transport=transport, base_url="http://test") as ac:
        answers = [
            (await ac.get("/me/summary", headers={"X-User": who})).json()["owner"]
            for who in ("ann", "bob", "ann", "bob")
        ]

    assert answers == ["ann", "bob", "ann", "bob"]
    assert summaries_computed == ["ann", "bob"]


# --- stampedes and outages ---------------------------------------------------------------------


async def test_50_concurrent_requests_for_one_profile_read_the_database_once(
    committed_client, cache_backend, monkeypatch
):
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    payload = build_user_create_payload()
    assert (await committed_client.post(f"{USERS}/", json=payload)).status_code == 201
    reads = count_calls(monkeypatch, UserService, "get_public_profile", delay=0.2)

    responses = await asyncio.gather(
        *(committed_client.get(f"{USERS}/{payload['username']}") for _ in range(50))
    )

    assert [response.status_code for response in responses] == [200] * 50
    assert {response.json()["username"] for response in responses} == {payload["username"]}
    assert len(reads) == 1


async def test_cached_routes_answer_200_when_redis_is_down(
    superuser_client, db_session, monkeypatch, caplog
):
    point_cache_at(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")
    user = await create_user(db_session)
    path = f"{USERS}/{user['username']}"

    with caplog.at_level(logging.WARNING, logger=CACHE_LOGGER):
        profiles = [await superuser_client.get(path) for _ in range(3)]
        tiers = [await superuser_client.get(f"{TIERS}/") for _ in range(2)]
        write = await superuser_client.patch(path, json={"name": "Still Works"})
        after = await superuser_client.get(path)

    assert [r.status_code for r in (*profiles, *tiers, write, after)] == [200] * 7
    assert after.json()["name"] == "Still Works"  # no cache: the database answers
    assert any(record.levelno == logging.WARNING for record in caplog.records)
