"""A dependency that is down answers 503 + Retry-After, never 500: the database and the
session store's Redis, each pointed at a port where nothing listens (refused at once, as when
the server is stopped), through real requests to the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from fastapi import Request
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.infrastructure.config import settings
from src.infrastructure.database.session import async_session, build_engine, request_session
from src.infrastructure.database.statements import fetch_one
from src.modules.auth import sessions as session_stores
from src.modules.user.service import PUBLIC_PROFILE
from tests.conftest import TEST_DB_URL
from tests.helpers.database import is_sqlite

pytestmark = pytest.mark.integration

DEAD_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Request-ID"]
    assert response.json() == {"detail": "Service temporarily unavailable, try again shortly"}


async def test_a_database_that_is_down_is_a_503(app):
    dead = build_engine(DEAD_POSTGRES)

    async def unreachable_db():
        async with AsyncSession(dead) as session:
            yield session

    app.dependency_overrides[async_session] = unreachable_db
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            profile = await client.get("/api/v1/users/somebody")
            sign_up = await client.post(
                "/api/v1/users",
                json={
                    "name": "N",
                    "username": "nobody1",
                    "email": "nobody1@example.com",
                    "password": "Quiet-Lantern-Orbit-42",
                },
            )
    finally:
        app.dependency_overrides.clear()
        await dead.dispose()
    _assert_unavailable(profile)
    _assert_unavailable(sign_up)


@pytest.mark.skipif(
    is_sqlite(TEST_DB_URL),
    reason="only Postgres reads borrow a pooled asyncpg connection; SQLite never does",
)
async def test_a_database_that_went_down_is_a_503_for_a_read_that_borrows(app, db_engine):
    """A GET's hot read takes its pooled connection itself (`statements.py`); when the server
    is gone, the error it meets is still the one the 503 handler knows."""
    up = True
    refused: list[str] = []

    async def connect() -> asyncpg.Connection:
        url = TEST_DB_URL if up else make_url(DEAD_POSTGRES)
        if not up:
            refused.append("connect")
        return await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )

    engine = build_engine(DEAD_POSTGRES, async_creator=connect)
    writer = async_sessionmaker(engine)
    reader = async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
    async with reader() as db:  # while up: the statement's keys are learnt on this engine
        assert await fetch_one(db, PUBLIC_PROFILE, {"username": "nobody"}) is None

    async def borrowing_db(request: Request) -> AsyncIterator[AsyncSession]:
        async with request_session(request, lambda: writer, lambda: reader) as session:
            yield session

    await engine.dispose()
    up = False
    app.dependency_overrides[async_session] = borrowing_db
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        _assert_unavailable(await client.get("/api/v1/users/somebody"))
    await engine.dispose()  # the app fixture drops the override
    assert len(refused) == 1  # the borrow raised SQLAlchemy's own error: no second try


async def test_a_session_store_redis_that_is_down_is_a_503(client, monkeypatch):
    monkeypatch.setattr(settings, "SESSION_BACKEND", "redis")
    monkeypatch.setattr(settings, "REDIS_URL", DEAD_REDIS)
    session_stores._store.cache_clear()
    try:
        client.cookies.set(settings.SESSION_COOKIE_NAME, "some-session-token")
        response = await client.get("/api/v1/users/me")
    finally:
        session_stores._store.cache_clear()
    _assert_unavailable(response)


def test_a_sqlite_write_lock_wait_that_timed_out_is_unavailable():
    """SQLite's "database is locked" (busy_timeout ran out) is saturation: 503, not 500."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from src.infrastructure.availability import is_unavailable

    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    assert is_unavailable(locked)
    other = OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: users"))
    assert not is_unavailable(other)
