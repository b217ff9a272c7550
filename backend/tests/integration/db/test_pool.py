"""The per-request connection budget on a real pool (see `infrastructure/database/session.py`).

- A request holds at most one pooled connection at once, hands it back before its response
  starts, and leaves nothing checked out once answered.
- A dry pool is a fast 503: a request that cannot get a connection within the pool timeout
  answers 503 with `Retry-After` (not a hang), and the next request after a connection is
  free again is served.

Both run the real app with `async_session` overridden by a dependency that builds its sessions
exactly as the real one does, but on an engine of the test's own (`build_engine`), whose pool
the test watches through SQLAlchemy's `checkout`/`checkin` pool events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from starlette.types import Message, Receive, Scope, Send

from src.infrastructure.database.session import (
    async_session,
    build_engine,
    get_engine,
    read_sessionmaker,
    request_session,
)
from tests.helpers.csrf import browser
from tests.helpers.factories import DEFAULT_PASSWORD, build_user_create_payload, create_user

pytestmark = pytest.mark.integration

API = "/api/v1"


def session_dependency(engine: AsyncEngine) -> Callable[[Request], AsyncIterator[AsyncSession]]:
    """`async_session` on `engine`: autocommit sessions (whose hot reads borrow their
    connection) for safe methods, a transaction otherwise, one session per request."""
    writer = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    reader = read_sessionmaker(engine)

    async def override(request: Request) -> AsyncIterator[AsyncSession]:
        async with request_session(request, lambda: writer, lambda: reader) as session:
            yield session

    return override


@dataclass
class RequestConnections:
    """What one request did with the pools: connections held now, at most, in total, and
    when its response started."""

    label: str
    task: asyncio.Task[Any] | None
    held: int = 0
    most: int = 0
    checkouts: int = 0
    held_at_response_start: int | None = None


_current: ContextVar[RequestConnections | None] = ContextVar("current_request", default=None)
_OWNER = "test_pool.owner"


@dataclass
class PoolWatch:
    """Counts checkouts per request on the watched engines (the test's engine, and the app's
    own engine so that code bypassing the `async_session` dependency is counted too).

    A checkout belongs to the request whose ASGI call is running in the same asyncio task;
    a background task the request spawned (a welcome email, say) is not the request."""

    engines: list[AsyncEngine]
    requests: list[RequestConnections] = field(default_factory=list)

    def __post_init__(self) -> None:
        for engine in self.engines:
            event.listen(engine.sync_engine, "checkout", self._checkout)
            event.listen(engine.sync_engine, "checkin", self._checkin)

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine.sync_engine, "checkout", self._checkout)
            event.remove(engine.sync_engine, "checkin", self._checkin)

    def _checkout(self, _dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        owner = _current.get()
        if owner is None or owner.task is not _task():
            return
        record.info[_OWNER] = owner
        owner.held += 1
        owner.checkouts += 1
        owner.most = max(owner.most, owner.held)

    def _checkin(self, _dbapi: Any, record: ConnectionPoolEntry) -> None:
        owner = record.info.pop(_OWNER, None)
        if owner is not None:
            owner.held -= 1

    def wrap(self, app: Any) -> Any:
        """`app`, with each HTTP request tracked from its first byte in to its last byte out."""

        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            owner = RequestConnections(f"{scope['method']} {scope['path']}", _task())
            self.requests.append(owner)

            async def watching_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    owner.held_at_response_start = owner.held
                await send(message)

            token = _current.set(owner)
            try:
                await app(scope, receive, watching_send)
            finally:
                _current.reset(token)

        return watched


def _task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a thread of the threadpool: not the request's task
        return None


@pytest_asyncio.fixture
async def pool_engine(db_engine: AsyncEngine, clean_tables: None) -> AsyncIterator[AsyncEngine]:
    """An engine of the test's own on the test database (real commits; tables emptied)."""
    engine = build_engine(db_engine.url.render_as_string(hide_password=False))
    yield engine
    await engine.dispose()


@pytest.fixture
def on_engine(app: Any) -> Iterator[Callable[[AsyncEngine], None]]:
    """Point the app's `async_session` at an engine; undone after the test."""

    def point(engine: AsyncEngine) -> None:
        app.dependency_overrides[async_session] = session_dependency(engine)

    yield point
    app.dependency_overrides.pop(async_session, None)


async def test_a_request_never_holds_two_pooled_connections(app, pool_engine, on_engine):
    on_engine(pool_engine)
    watch = PoolWatch([pool_engine, get_engine()])
    watched_app = watch.wrap(app)
    pool = pool_engine.pool
    async with AsyncSession(pool_engine, expire_on_commit=False) as db:
        admin = await create_user(db, is_superuser=True)
        await db.commit()
    payload = build_user_create_payload()
    name = payload["username"]
    checked: list[tuple[str, int]] = []

    async def answered(response: Any, expected: int) -> None:
        assert response.status_code == expected, (watch.requests[-1].label, response.text)
        # Every connection is back in the pool once the client has the response: the test's
        # pool is empty, and the request holds none of the app's own engine either.
        checked.append((watch.requests[-1].label, pool.checkedout() + watch.requests[-1].held))

    try:
        async with browser(watched_app) as user, browser(watched_app) as superuser:
            await answered(await user.post(f"{API}/users", json=payload), 201)
            await answered(
                await user.post(
                    f"{API}/auth/login", json={"username": name, "password": DEFAULT_PASSWORD}
                ),
                200,
            )
            await answered(await user.get(f"{API}/users/me"), 200)
            await answered(await user.get(f"{API}/users/{name}"), 200)
            await answered(
                await user.patch(f"{API}/users/{name}", json={"name": "Renamed Person"}), 200
            )
            await answered(
                await superuser.post(
                    f"{API}/auth/login",
                    json={"username": admin["username"], "password": admin["password"]},
                ),
                200,
            )
            await answered(await superuser.get(f"{API}/users?items_per_page=10"), 200)
            await answered(await user.get(f"{API}/tiers"), 200)
            await answered(await user.post(f"{API}/auth/logout/"), 204)
    finally:
        watch.close()

    by_label = {r.label: r for r in watch.requests}
    expected = {
        f"POST {API}/users",
        f"POST {API}/auth/login",
        f"GET {API}/users/me",
        f"GET {API}/users/{name}",
        f"PATCH {API}/users/{name}",
        f"GET {API}/users",
        f"GET {API}/tiers",
        f"POST {API}/auth/logout/",
    }
    assert expected <= set(by_label), sorted(by_label)
    # Not vacuous: every one of these requests did reach the database through a watched pool.
    untouched = sorted(label for label in expected if by_label[label].checkouts == 0)
    assert untouched == [], "these requests never checked out a watched connection"
    over_budget = [(r.label, r.most) for r in watch.requests if r.most > 1]
    assert over_budget == [], "requests that held two pooled connections at once"
    late = [(r.label, r.held_at_response_start) for r in watch.requests]
    assert [item for item in late if item[1] != 0] == [], (
        "requests that still held a connection when their response started"
    )
    assert [item for item in checked if item[1] != 0] == [], (
        "connections still checked out after the response"
    )
    assert pool.checkedout() == 0


async def test_a_dry_pool_is_a_fast_503_and_recovers(app, db_engine, clean_tables, on_engine):
    # On the embedded profile the file database gets a queue pool too, so the test means the
    # same thing there; it is skipped only for a pool without a size (in-memory SQLite).
    engine = build_engine(
        db_engine.url.render_as_string(hide_password=False),
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.2,
    )
    try:
        if not hasattr(engine.pool, "size"):
            pytest.skip(f"{type(engine.pool).__name__} has no size to exhaust")
        on_engine(engine)
        async with AsyncSession(engine, expire_on_commit=False) as db:
            user = await create_user(db)
            await db.commit()
        assert engine.pool.checkedout() == 0
        profile = f"{API}/users/{user['username']}"

        held = await engine.connect()  # the pool's only connection
        try:
            await held.exec_driver_sql("SELECT 1")
            async with browser(app) as client:
                started = time.perf_counter()
                response = await client.get(profile)
                elapsed = time.perf_counter() - started
        finally:
            await held.close()

        assert response.status_code == 503, response.text
        assert elapsed < 2.0, f"the dry pool took {elapsed:.2f}s to answer"
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["content-type"].startswith("application/json")
        assert set(response.json()) == {"detail"}
        assert isinstance(response.json()["detail"], str)
        assert response.headers["X-Request-ID"]
        assert engine.pool.checkedout() == 0

        async with browser(app) as client:
            recovered = await client.get(profile)
        assert recovered.status_code == 200, recovered.text
        assert recovered.json()["username"] == user["username"]
        assert engine.pool.checkedout() == 0
    finally:
        await engine.dispose()
