"""Global fixtures: `app`, `db_engine`, `db_session` (rolled back per test), `client`,
`superuser_client`, and `committed_client` for tests that need real commits and concurrency.
What a route wrote to the task outbox: `tests.helpers.outbox.outbox_rows`.

The test database is chosen before the app is imported (see `tests/helpers/database.py`), so
even code that does not go through the `async_session` override reaches the test database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.helpers.database import (
    configured_url,
    database_url_for_tests,
    drop_database,
    is_sqlite,
    recreate_database,
    unreachable_message,
)
from tests.helpers.redis import flush, redis_fallback_reason, redis_url_for_tests
from tests.helpers.redis import unreachable_message as redis_unreachable

FALLBACK_REASON = configured_url()[1]
TEST_DB_URL = database_url_for_tests()
os.environ["DATABASE_URL"] = TEST_DB_URL.render_as_string(hide_password=False)
TEST_REDIS_URL = redis_url_for_tests()
os.environ["REDIS_URL"] = TEST_REDIS_URL
# The production profile (Postgres) keeps the shared state in Redis, as production does; the
# embedded profile (SQLite) keeps it in memory. Same suite, both profiles.
REDIS_FALLBACK_REASON = redis_fallback_reason()
PRODUCTION_PROFILE = not is_sqlite(TEST_DB_URL) and REDIS_FALLBACK_REASON is None
if PRODUCTION_PROFILE:
    os.environ.setdefault("CACHE_BACKEND", "redis")
    os.environ.setdefault("RATE_LIMIT_STORAGE", "redis")
    _redis = make_url(TEST_REDIS_URL.replace("redis://", "postgresql://", 1))
    # Assigned, not defaulted: xdist workers inherit the controller's environment, and each
    # worker's cache must live in that worker's own Redis database.
    os.environ["CACHE_REDIS_HOST"] = _redis.host or "127.0.0.1"
    os.environ["CACHE_REDIS_PORT"] = str(_redis.port or 6379)
    os.environ["CACHE_REDIS_DB"] = _redis.database or "0"

from src.infrastructure.database.models import Base
from src.infrastructure.database.session import (
    async_session,
    build_engine,
    dispose_engine,
)
from src.interfaces.main import app as fastapi_app
from src.modules.user.service import UserService
from tests.helpers.csrf import CSRFAwareClient
from tests.helpers.factories import login

BASE_URL = "http://test"
SUPERUSER = {
    "name": "Super",
    "username": "super",
    "email": "super@test.com",
    "password": "Saffron-Glacier-Tandem-19",
}


def pytest_report_header() -> list[str]:
    shown = TEST_DB_URL.set(database=TEST_DB_URL.database).render_as_string(hide_password=True)
    profile = "production (Postgres + Redis)" if PRODUCTION_PROFILE else "embedded (SQLite)"
    lines = [f"test profile: {profile}; database: {shown}; redis: {TEST_REDIS_URL}"]
    lines += [f"WARNING: {reason}" for reason in (FALLBACK_REASON, REDIS_FALLBACK_REASON) if reason]
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, reason in (("database", FALLBACK_REASON), ("redis", REDIS_FALLBACK_REASON)):
        if reason:
            terminalreporter.write_sep("=", f"{title} fallback", yellow=True)
            terminalreporter.write_line(reason, yellow=True)


@pytest.fixture(scope="session")
def app(request: pytest.FixtureRequest) -> Any:
    if PRODUCTION_PROFILE:
        request.getfixturevalue("redis_url")  # the app's shared state lives there
    return fastapi_app


@pytest_asyncio.fixture(scope="session")
async def db_engine() -> AsyncIterator[AsyncEngine]:
    """A fresh test database with the current schema (create_all: the tests' fast path;
    tests/integration/db/test_migrations.py proves the migrations build the same schema)."""
    try:
        await recreate_database(TEST_DB_URL)
    except (OSError, Exception) as error:  # refused, timeout, auth: all mean "not reachable"
        pytest.fail(unreachable_message(TEST_DB_URL, error), pytrace=False)
    engine = build_engine(TEST_DB_URL.render_as_string(hide_password=False))
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()
    await dispose_engine()
    await drop_database(TEST_DB_URL)


@pytest_asyncio.fixture(scope="session")
async def redis_url() -> str:
    """The worker's Redis database, emptied at the start. Fails loudly when Redis is down
    (or skips, with the reason printed, when no Redis was asked for and none answers)."""
    if REDIS_FALLBACK_REASON:
        pytest.skip(REDIS_FALLBACK_REASON)
    try:
        await flush(TEST_REDIS_URL)
    except Exception as error:  # refused, timeout, auth: all mean "not reachable"
        pytest.fail(redis_unreachable(TEST_REDIS_URL, error), pytrace=False)
    return TEST_REDIS_URL


@pytest_asyncio.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[str]:
    """`redis_url`, emptied again after the test."""
    yield redis_url
    await flush(redis_url)


GENEROUS_RATE_LIMIT = "10000/minute"


@pytest_asyncio.fixture(autouse=True)
async def fresh_rate_limits(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Rate limiting stays on in the suite, with generous defaults (a test may send hundreds
    of requests as one user; tests of the limits set their own), and every test starts with
    no counters (memory or Redis) and no cached rules, so no test counts against another."""
    from src.infrastructure.config import settings
    from src.infrastructure.ratelimit.limiter import get_rate_limiter
    from src.modules.rate_limit.service import rate_limit_rules

    monkeypatch.setattr(settings, "RATE_LIMIT_DEFAULT", GENEROUS_RATE_LIMIT)
    monkeypatch.setattr(settings, "RATE_LIMIT_ANONYMOUS", GENEROUS_RATE_LIMIT)
    rate_limit_rules.invalidate()
    if get_rate_limiter.cache_info().currsize:  # built by an earlier test of this worker
        await get_rate_limiter().reset()
    yield


@pytest_asyncio.fixture(autouse=True)
async def fresh_cache() -> AsyncIterator[None]:
    """Every test starts with an empty `@cache` (memory or Redis) on the current settings: a
    test's rows are rolled back, so what it cached must go too."""
    from src.infrastructure.cache import reset_cache_backend

    yield
    await reset_cache_backend(clear=True)


@pytest_asyncio.fixture
async def db_session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test.

    Code under test may commit: with `create_savepoint` its commits only release savepoints,
    and the outer transaction still discards everything at the end.
    """
    async with db_engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


def _client(app: Any, cls: type[AsyncClient] = CSRFAwareClient) -> AsyncClient:
    return cls(transport=ASGITransport(app=app), base_url=BASE_URL)


@pytest_asyncio.fixture
async def client(app: Any, db_session: AsyncSession) -> AsyncGenerator[AsyncClient, None]:
    """A CSRF-aware client whose every database access goes through `db_session`."""

    async def override_db() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[async_session] = override_db
    async with _client(app) as ac:
        yield ac
    app.dependency_overrides.clear()


@pytest_asyncio.fixture
async def plain_client(app: Any, client: AsyncClient) -> AsyncGenerator[AsyncClient, None]:
    """Like `client` (same test transaction) but sends no CSRF header on its own."""
    async with _client(app, AsyncClient) as ac:
        yield ac


@pytest_asyncio.fixture
async def superuser_client(
    client: AsyncClient, db_session: AsyncSession
) -> AsyncGenerator[AsyncClient, None]:
    """`client`, logged in as a superuser created through the service."""
    await UserService().create(payload=dict(SUPERUSER), db=db_session, is_superuser=True)
    await db_session.commit()
    await login(client, SUPERUSER["username"], SUPERUSER["password"])
    yield client


@pytest_asyncio.fixture
async def clean_tables(db_engine: AsyncEngine) -> AsyncIterator[None]:
    """For tests whose code commits for real: every table is emptied afterwards."""
    yield
    await dispose_engine()
    async with db_engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(delete(table))


@pytest_asyncio.fixture
async def committed_client(app: Any, clean_tables: None) -> AsyncGenerator[AsyncClient, None]:
    """A client on the app's own engine: real commits, real concurrency (one connection per
    request), tables emptied afterwards."""
    async with _client(app) as ac:
        yield ac


@pytest_asyncio.fixture(autouse=True)
async def finish_in_process_tasks() -> AsyncIterator[None]:
    """Tasks sent to the in-memory broker (the tests' default) run in the background, as on a
    worker; a test ends only once they have, so none runs into the next test."""
    yield
    import asyncio

    from src.infrastructure.taskiq.brokers import default_broker, drain

    await asyncio.wait_for(drain(default_broker), timeout=30)
