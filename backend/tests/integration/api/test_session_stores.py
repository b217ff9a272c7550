"""The same session rules on every store: database, Redis (real server) and memory.

Time is moved forward by shifting the stores' clock, so idle and absolute timeouts are
checked by the store's own logic, not by waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from httpx import ASGITransport

from src.infrastructure.config import settings
from src.infrastructure.database import models as db_models
from src.modules.auth import sessions as session_stores
from src.modules.auth.sessions import database as session_crud
from src.modules.auth.sessions import keyvalue as keyvalue_store
from tests.helpers.csrf import CSRFAwareClient
from tests.helpers.factories import create_user, login

ME = "/api/v1/users/me"
BACKENDS = ["database", "redis", "memory"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> Iterator[str]:
    if request.param == "redis":
        request.getfixturevalue("clean_redis")
    monkeypatch.setattr(settings, "SESSION_BACKEND", request.param)
    session_stores._store.cache_clear()  # a fresh memory store per test
    yield request.param
    session_stores._store.cache_clear()


@pytest.fixture
def clock(monkeypatch):
    """Shift the session stores' notion of "now"."""
    offset = {"delta": timedelta(0)}

    def shifted() -> datetime:
        return db_models.utcnow() + offset["delta"]

    monkeypatch.setattr(keyvalue_store, "utcnow", shifted)
    monkeypatch.setattr(session_crud, "utcnow", shifted)

    def advance(**kwargs: float) -> None:
        offset["delta"] += timedelta(**kwargs)

    return advance


async def _signed_in(client, db_session) -> dict:
    user = await create_user(db_session)
    await login(client, user["username"], user["password"])
    return user


@pytest.mark.integration
async def test_login_me_logout(backend, client, db_session):
    await _signed_in(client, db_session)
    token = client.cookies[settings.SESSION_COOKIE_NAME]
    assert (await client.get(ME)).status_code == 200

    assert (await client.post("/api/v1/auth/logout")).status_code == 204

    client.cookies.set(settings.SESSION_COOKIE_NAME, token)
    assert (await client.get(ME)).status_code == 401


@pytest.mark.integration
async def test_idle_timeout(backend, client, db_session, clock):
    await _signed_in(client, db_session)
    clock(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS - 30)
    assert (await client.get(ME)).status_code == 200  # used in time: refreshed
    clock(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS - 30)
    assert (await client.get(ME)).status_code == 200
    clock(seconds=settings.SESSION_IDLE_TIMEOUT_SECONDS + 1)
    assert (await client.get(ME)).status_code == 401


@pytest.mark.integration
async def test_absolute_timeout_ends_even_an_active_session(backend, client, db_session, clock):
    await _signed_in(client, db_session)
    step = settings.SESSION_IDLE_TIMEOUT_SECONDS // 2
    elapsed = 0
    while elapsed + step < settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS:
        clock(seconds=step)
        elapsed += step
        assert (await client.get(ME)).status_code == 200
    clock(seconds=step)
    assert (await client.get(ME)).status_code == 401


@pytest.mark.integration
async def test_list_revoke_and_logout_everywhere(backend, app, client, db_session):
    user = await _signed_in(client, db_session)
    transport = ASGITransport(app=app)
    async with CSRFAwareClient(transport=transport, base_url="http://test") as other:
        await login(other, user["username"], user["password"])
        sessions = (await client.get("/api/v1/auth/sessions")).json()
        assert len(sessions) == 2
        assert [s["current"] for s in sessions].count(True) == 1
        other_id = next(s["id"] for s in sessions if not s["current"])

        assert (await client.delete(f"/api/v1/auth/sessions/{other_id}")).status_code == 204
        assert (await other.get(ME)).status_code == 401
        assert (await client.get(ME)).status_code == 200

        await login(other, user["username"], user["password"])
        assert (await other.post("/api/v1/auth/logout-all")).status_code == 204
        assert (await client.get(ME)).status_code == 401
        assert (await other.get(ME)).status_code == 401


@pytest.mark.integration
async def test_oldest_sessions_beyond_the_cap_end(backend, app, client, db_session, monkeypatch):
    monkeypatch.setattr(settings, "SESSION_MAX_PER_USER", 2)
    user = await _signed_in(client, db_session)
    transport = ASGITransport(app=app)
    async with (
        CSRFAwareClient(transport=transport, base_url="http://test") as second,
        CSRFAwareClient(transport=transport, base_url="http://test") as third,
    ):
        await login(second, user["username"], user["password"])
        await login(third, user["username"], user["password"])
        assert (await client.get(ME)).status_code == 401  # the oldest
        assert (await second.get(ME)).status_code == 200
        assert (await third.get(ME)).status_code == 200


@pytest.mark.integration
async def test_deleted_user_sessions_end(backend, client, db_session):
    user = await _signed_in(client, db_session)
    assert (await client.delete(f"/api/v1/users/{user['username']}")).status_code == 204
    assert (await client.get(ME)).status_code == 401


@pytest.mark.integration
async def test_redis_holds_only_the_token_hash_and_survives_a_new_process(
    client, db_session, clean_redis, monkeypatch
):
    from redis.asyncio import Redis

    monkeypatch.setattr(settings, "SESSION_BACKEND", "redis")
    session_stores._store.cache_clear()
    await _signed_in(client, db_session)
    token = client.cookies[settings.SESSION_COOKIE_NAME]

    raw = Redis.from_url(clean_redis, decode_responses=True)
    try:
        keys = await raw.keys("session:*")
        values = [str(await raw.hgetall(k)) for k in keys if not k.startswith("session:user:")]
    finally:
        await raw.aclose()
    assert keys
    assert all(token not in key for key in keys)
    assert all(token not in value for value in values)

    session_stores._store.cache_clear()  # as a freshly started process would
    assert (await client.get(ME)).status_code == 200


async def _deleted_then_touched(backend) -> None:
    record = {"id": "s1", "user_id": "7", "last_seen_at": "1.0", "expires_at": "9e9"}
    await backend.put("hash-1", record, 60, 7)
    await backend.delete(["hash-1"], 7)  # a logout racing a request that read the session

    await backend.touch("hash-1", "2.0", 60, 7)

    assert await backend.get("hash-1") is None
    assert await backend.keys_for_user(7) == []


@pytest.mark.integration
async def test_refreshing_last_seen_never_brings_back_a_deleted_redis_session(clean_redis):
    await _deleted_then_touched(session_stores.RedisSessionBackend())


@pytest.mark.integration
async def test_refreshing_last_seen_never_brings_back_a_deleted_memory_session():
    await _deleted_then_touched(session_stores.MemorySessionBackend())
