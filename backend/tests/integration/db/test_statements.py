"""The hot-read path of `infrastructure/database/statements.py` on a real Postgres.

A prebuilt SELECT is sent straight to the session's asyncpg connection; these tests prove it
returns exactly what SQLAlchemy's own execution returns (keys, values, types: timezone-aware
datetimes, JSON, NULLs), that it is really taken, and that it steps aside where it must: a
transaction not begun yet on the server, statement listeners, a driver error, a dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import (
    Float,
    Numeric,
    bindparam,
    cast,
    event,
    exc,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import await_only

from src.infrastructure.auth.tokens import hash_token
from src.infrastructure.database.functions import comma_joined
from src.infrastructure.database.session import build_engine, read_sessionmaker
from src.infrastructure.database.statements import (
    allow_borrowing,
    fetch_all,
    fetch_one,
    fetch_row,
    fetch_value,
    prebuilt,
    return_borrowed,
)
from src.modules.auth.apikeys.models import ApiKey
from src.modules.auth.apikeys.service import _RESOLVE as KEY_RESOLVE
from src.modules.auth.sessions.database import _RESOLVE as SESSION_RESOLVE
from src.modules.auth.sessions.database import DatabaseSessionStore
from src.modules.rbac.crud import ROLES_COUNT
from src.modules.rbac.models import Role
from src.modules.user.models import User
from src.modules.user.service import PUBLIC_PROFILE, USERS_COUNT, USERS_PAGE
from tests.conftest import TEST_DB_URL
from tests.helpers.database import is_sqlite
from tests.helpers.factories import create_user
from tests.helpers.roles import grant

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(is_sqlite(TEST_DB_URL), reason="the raw path is asyncpg's (Postgres)"),
]

Fetch = Callable[..., Awaitable[Any]]

# Statements as a module would declare them: marked once, at import time.
WITH_NULL = prebuilt(select(User.id, literal(None).label("nothing")).order_by(User.id))
UNLABELLED = prebuilt(  # keys SQLAlchemy makes up: the raw path must use the same
    select(func.lower(User.username), comma_joined(User.email), User.id + 1).group_by(User.id)
)
TWO_IDS = prebuilt(select(User.id, Role.id).join(Role, literal(True)).order_by(User.id))
REPEATED_NAMES = prebuilt(select(literal(1).label("a"), literal(2).label("a")))
DECIMALS = prebuilt(
    select(cast(literal(2.5), Numeric(10, 2)).label("price"), cast(literal(1.5), Float))
)
SEVEN = prebuilt(select(literal(7).label("seven")))
IN_LIST = prebuilt(select(literal(1).label("n")).where(literal(2).in_([2, 3])))
TEXT = prebuilt(text("SELECT 1 AS one"))
PID = prebuilt(select(func.pg_backend_pid()))


@pytest.fixture
def driver_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement sent through asyncpg's `fetch`/`fetchrow` directly (the
    SQLAlchemy adapter uses prepared statements instead, so it does not show here)."""
    calls: list[str] = []
    for name in ("fetch", "fetchrow"):
        original = getattr(asyncpg.Connection, name)

        def spy(self: Any, query: str, *args: Any, _original: Any = original, **kw: Any) -> Any:
            calls.append(query)
            return _original(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, spy)
    return calls


@contextmanager
def through_sqlalchemy(engine: AsyncEngine) -> Iterator[list[str]]:
    """A statement listener: while it is attached, every statement takes SQLAlchemy's path."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listener)


def typed(value: Any) -> Any:
    """A value with its type spelled out, so `1 == True` or naive == aware cannot pass."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    return (type(value).__name__, value)


@pytest_asyncio.fixture(params=["own", "borrowed"])
async def reader(
    request: pytest.FixtureRequest, db_engine: AsyncEngine
) -> AsyncIterator[AsyncSession]:
    """A session as a GET request gets one: autocommit; its hot reads run on the session's
    own connection ("own") or, as in a request, borrow one until SQLAlchemy needs it."""
    if request.param == "borrowed":
        session = read_sessionmaker(db_engine)()
        allow_borrowing(session)
    else:
        engine = db_engine.execution_options(isolation_level="AUTOCOMMIT")
        session = async_sessionmaker(engine, expire_on_commit=False)()
    try:
        async with session:
            yield session
    finally:
        await return_borrowed(session)


@pytest_asyncio.fixture
async def committed(db_engine: AsyncEngine, clean_tables: None) -> AsyncIterator[dict[str, Any]]:
    """A user with two roles, a session and an API key, committed (an autocommit read sees
    committed rows only); every table is emptied afterwards (the user's default tier too)."""
    maker = async_sessionmaker(db_engine, expire_on_commit=False)
    async with maker() as db:
        user = await create_user(db, name="Zoë")
        await create_user(db)  # another user, so reads must pick the right one
        await db.commit()
        await grant(db, user, "user.read")
        await grant(db, user, "role.read")
        token = await DatabaseSessionStore().create(
            db, user_id=user["id"], ip_address="127.0.0.1", user_agent=None
        )
        prefix = uuid.uuid4().hex[:8]
        await db.execute(
            insert(ApiKey).values(
                user_id=user["id"],
                name="ci",
                prefix=prefix,
                key_hash="x" * 64,
                scopes=["users:read", "profile:write"],
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
        await db.commit()
    yield {"user": user, "token": token, "prefix": prefix}


async def test_every_hot_statement_reads_what_sqlalchemy_reads(
    reader: AsyncSession,
    committed: dict[str, Any],
    db_engine: AsyncEngine,
    driver_calls: list[str],
) -> None:
    user, token, prefix = committed["user"], committed["token"], committed["prefix"]
    now = datetime.now(UTC)
    session_params = {
        "token_hash": hash_token(token),
        "now": now,
        "idle_cutoff": now - timedelta(hours=1),
    }
    cases: list[tuple[Fetch, Any, dict[str, Any] | None]] = [
        (fetch_one, PUBLIC_PROFILE, {"username": user["username"]}),
        (fetch_one, PUBLIC_PROFILE, {"username": "nobody-at-all"}),
        (fetch_all, USERS_PAGE, {"limit": 10, "offset": 0}),
        (fetch_all, USERS_PAGE, {"limit": 10, "offset": 10_000}),
        (fetch_value, USERS_COUNT, None),
        (fetch_value, ROLES_COUNT, None),
        (fetch_row, SESSION_RESOLVE, session_params),
        (fetch_row, KEY_RESOLVE, {"prefix": prefix, "now": now}),
        (fetch_one, WITH_NULL, None),
        (fetch_one, UNLABELLED, None),
        (fetch_one, TWO_IDS, None),  # SQLAlchemy names the second `id_1`
    ]
    for fetch, statement, params in cases:
        await fetch(reader, statement, params)  # the first time, SQLAlchemy's: its keys
        await reader.close()  # as a new request: nothing opened yet, a borrowing one borrows
        before = len(driver_calls)
        raw = await fetch(reader, statement, params)
        assert len(driver_calls) == before + 1, f"{statement} did not take the raw path"
        with through_sqlalchemy(db_engine) as seen:
            expected = await fetch(reader, statement, params)
        assert len(seen) == 1  # SQLAlchemy's path this time
        assert len(driver_calls) == before + 1
        assert typed(raw) == typed(expected), statement

    # What the reads found, so that "equal" is not "equally empty".
    profile = await fetch_one(reader, PUBLIC_PROFILE, {"username": user["username"]})
    assert profile is not None
    assert profile["name"] == "Zoë"
    assert profile["created_at"].tzinfo is not None
    session_row = await fetch_row(reader, SESSION_RESOLVE, session_params)
    assert session_row is not None
    assert session_row[3] == user["username"]
    assert session_row[1].tzinfo is not None
    assert sorted(session_row[-1].split(",")) == ["role.read", "user.read"]
    key_row = await fetch_row(reader, KEY_RESOLVE, {"prefix": prefix, "now": now})
    assert key_row is not None
    assert key_row[2] == ["users:read", "profile:write"]
    assert await fetch_value(reader, USERS_COUNT) >= 2


async def test_the_first_execution_is_sqlalchemys_and_teaches_the_keys(
    reader: AsyncSession, driver_calls: list[str]
) -> None:
    statement = prebuilt(select(literal("a").label("x"), literal(None).label("y")))
    assert await fetch_all(reader, statement) == [{"x": "a", "y": None}]
    assert driver_calls == []
    assert await fetch_all(reader, statement) == [{"x": "a", "y": None}]
    assert len(driver_calls) == 1


async def test_unmarked_statements_take_sqlalchemys_path(
    reader: AsyncSession, driver_calls: list[str]
) -> None:
    """Statements built per call would be compiled on every call: not worth it."""
    for _ in range(3):
        assert await fetch_value(reader, select(literal(7))) == 7
    assert driver_calls == []


async def test_what_the_raw_path_cannot_read_exactly_takes_sqlalchemys_path(
    reader: AsyncSession,
    committed: dict[str, Any],
    db_engine: AsyncEngine,
    driver_calls: list[str],
) -> None:
    """Repeated result names (a mapping keeps the last), types whose result processing needs
    the driver's column type (`Numeric`, `Float`), expanding lists, text."""
    for statement in (REPEATED_NAMES, DECIMALS, IN_LIST, TEXT):
        for _ in range(2):
            found = await fetch_all(reader, statement)
        with through_sqlalchemy(db_engine):
            expected = await fetch_all(reader, statement)
        assert typed(found) == typed(expected), statement
    assert driver_calls == []
    assert typed(await fetch_one(reader, DECIMALS)) == typed(
        {"price": Decimal("2.50"), "anon_1": 1.5}
    )


async def test_a_read_in_a_transaction_takes_sqlalchemys_path(
    db_session: AsyncSession, driver_calls: list[str]
) -> None:
    """A write request's session: a failed statement would abort its transaction, and
    SQLAlchemy sends BEGIN with its first statement."""
    user = await create_user(db_session)
    for _ in range(2):
        assert await fetch_one(db_session, PUBLIC_PROFILE, {"username": user["username"]})
    async with async_sessionmaker(db_session.bind)() as session:
        for _ in range(2):
            assert await fetch_value(session, SEVEN) == 7
    assert driver_calls == []


async def test_a_server_error_is_sqlalchemys_error(
    reader: AsyncSession, driver_calls: list[str]
) -> None:
    """The statement runs again through SQLAlchemy, which raises what the error handlers
    expect (a NUL in text is a 422 there, `interfaces/errors.py`)."""
    await fetch_one(reader, PUBLIC_PROFILE, {"username": "nobody-at-all"})
    before = len(driver_calls)
    with pytest.raises(exc.DBAPIError) as raised:
        await fetch_one(reader, PUBLIC_PROFILE, {"username": "a\x00b"})
    assert "0x00" in str(raised.value.orig)
    assert len(driver_calls) == before + 1  # tried raw first


async def test_a_driver_error_is_retried_through_sqlalchemy(
    reader: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the driver raises, the read runs again through SQLAlchemy, which answers it
    (here) or raises the error the application maps (below)."""
    assert await fetch_value(reader, SEVEN) == 7
    failures: list[str] = []

    async def broken(_self: Any, query: str, *_: Any, **__: Any) -> Any:
        failures.append(query)
        raise asyncpg.exceptions.InterfaceError("cannot perform operation")

    monkeypatch.setattr(asyncpg.Connection, "fetchrow", broken)
    assert await fetch_value(reader, SEVEN) == 7
    assert len(failures) == 1


async def test_a_dead_connection_raises_sqlalchemys_disconnect_error(
    db_engine: AsyncEngine, driver_calls: list[str]
) -> None:
    """The error the 503 handler and the pool's invalidation recognise, not a raw asyncpg one."""
    reader = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with async_sessionmaker(reader)() as session:
        assert await fetch_value(session, SEVEN) == 7
        pid = await fetch_value(session, PID)
        async with db_engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        before = len(driver_calls)
        with pytest.raises(exc.DBAPIError) as raised:
            await fetch_value(session, SEVEN)
        assert raised.value.connection_invalidated
        assert len(driver_calls) == before + 1  # tried raw first


# --- borrowing -------------------------------------------------------------------------------


@pytest.fixture
def checkouts(db_engine: AsyncEngine) -> Iterator[list[int]]:
    """How many connections of the pool were out at each checkout (the new one included)."""
    seen: list[int] = []

    def count(*_: Any) -> None:
        seen.append(db_engine.pool.checkedout())

    event.listen(db_engine.sync_engine, "checkout", count)
    try:
        yield seen
    finally:
        event.remove(db_engine.sync_engine, "checkout", count)


@pytest_asyncio.fixture
async def borrowing(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A request's read session, as `async_session` opens it; SEVEN's keys already learnt."""
    maker = async_sessionmaker(db_engine.execution_options(isolation_level="AUTOCOMMIT"))
    async with maker() as learner:
        assert await fetch_value(learner, SEVEN) == 7
        assert await fetch_value(learner, PID)
        assert await fetch_one(learner, PUBLIC_PROFILE, {"username": "nobody-at-all"}) is None
    session = read_sessionmaker(db_engine)()
    try:
        async with session:
            allow_borrowing(session)
            yield session
    finally:
        await return_borrowed(session)


async def test_the_session_takes_the_borrowed_connection_when_it_needs_one(
    db_engine: AsyncEngine,
    borrowing: AsyncSession,
    driver_calls: list[str],
    checkouts: list[int],
) -> None:
    pool = db_engine.pool
    out = pool.checkedout()
    pid = await fetch_value(borrowing, PID)
    assert await fetch_value(borrowing, SEVEN) == 7
    assert len(driver_calls) == 2
    assert not borrowing.in_transaction()  # the session itself opened nothing
    assert not borrowing.opened  # not even built: the reads needed only its engine
    assert pool.checkedout() == out + 1
    assert checkouts == [out + 1]

    # Something only SQLAlchemy runs: on the same connection, no second checkout.
    assert (await borrowing.execute(select(func.pg_backend_pid()))).scalar_one() == pid
    assert borrowing.opened
    assert borrowing.in_transaction()
    assert checkouts == [out + 1]
    # Hot reads now run on the session's connection, still the same one, still raw.
    assert await fetch_value(borrowing, PID) == pid
    assert len(driver_calls) == 3
    # Closed half-way and used again: still the borrowed connection, held to the end.
    await borrowing.close()
    assert await fetch_value(borrowing, PID) == pid
    assert checkouts == [out + 1]
    assert pool.checkedout() == out + 1
    await borrowing.close()
    await return_borrowed(borrowing)
    assert pool.checkedout() == out


async def test_another_session_hands_the_borrowed_connection_back_before_taking_its_own(
    db_engine: AsyncEngine, driver_calls: list[str], checkouts: list[int]
) -> None:
    """A session of any class (an `async_session` override's): through the pool."""
    pool = db_engine.pool
    maker = async_sessionmaker(db_engine.execution_options(isolation_level="AUTOCOMMIT"))
    async with maker() as learner:
        assert await fetch_value(learner, SEVEN) == 7
    out = pool.checkedout()
    checkouts.clear()
    driver_calls.clear()
    session = maker()
    try:
        async with session:
            allow_borrowing(session)
            assert await fetch_value(session, SEVEN) == 7
            assert len(driver_calls) == 1
            assert pool.checkedout() == out + 1
            assert (await session.execute(select(literal(8)))).scalar_one() == 8
            assert pool.checkedout() == out + 1
            assert checkouts == [out + 1, out + 1]  # returned, then taken again
    finally:
        await return_borrowed(session)
    assert pool.checkedout() == out


async def test_a_borrowed_connection_is_handed_back_at_the_end(
    db_engine: AsyncEngine, borrowing: AsyncSession
) -> None:
    out = db_engine.pool.checkedout()
    assert await fetch_value(borrowing, SEVEN) == 7
    assert db_engine.pool.checkedout() == out + 1
    await return_borrowed(borrowing)
    assert db_engine.pool.checkedout() == out
    await return_borrowed(borrowing)  # twice is harmless
    assert db_engine.pool.checkedout() == out


async def test_a_dead_borrowed_connection_is_replaced_and_the_read_answers(
    db_engine: AsyncEngine,
    borrowing: AsyncSession,
    driver_calls: list[str],
) -> None:
    """A stale connection costs the read a retry on a fresh one, not an error."""
    out = db_engine.pool.checkedout()
    pid = await fetch_value(borrowing, PID)
    assert not borrowing.in_transaction()  # it was read on a borrowed connection
    async with db_engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    before = len(driver_calls)
    assert await fetch_value(borrowing, SEVEN) == 7
    assert len(driver_calls) == before + 1  # tried on the dead one, then SQLAlchemy's path
    assert await fetch_value(borrowing, PID) != pid
    assert db_engine.pool.checkedout() == out + 1  # the dead one is not held, or leaked
    await borrowing.close()
    assert db_engine.pool.checkedout() == out


@pytest.fixture
def invalidated(db_engine: AsyncEngine) -> Iterator[list[BaseException | None]]:
    """The errors for which the pool dropped a connection."""
    seen: list[BaseException | None] = []

    def record(_dbapi: Any, _record: Any, error: BaseException | None) -> None:
        seen.append(error)

    event.listen(db_engine.sync_engine.pool, "invalidate", record)
    try:
        yield seen
    finally:
        event.remove(db_engine.sync_engine.pool, "invalidate", record)


async def test_a_server_error_on_a_borrowed_connection_keeps_the_connection(
    db_engine: AsyncEngine,
    borrowing: AsyncSession,
    driver_calls: list[str],
    invalidated: list[BaseException | None],
    checkouts: list[int],
) -> None:
    """Bad input is SQLAlchemy's error (the 422 handler's), run again on the same
    connection: no reconnect, no second checkout."""
    out = db_engine.pool.checkedout()
    with pytest.raises(exc.DBAPIError) as raised:
        await fetch_one(borrowing, PUBLIC_PROFILE, {"username": "a\x00b"})
    assert "0x00" in str(raised.value.orig)
    assert len(driver_calls) == 1  # tried on the borrowed connection first
    assert invalidated == []
    assert checkouts == [out + 1]
    await borrowing.close()
    assert db_engine.pool.checkedout() == out + 1  # held to the request's end
    await return_borrowed(borrowing)
    assert db_engine.pool.checkedout() == out


async def test_a_read_cancelled_on_a_borrowed_connection_drops_it(
    db_engine: AsyncEngine,
    borrowing: AsyncSession,
    invalidated: list[BaseException | None],
) -> None:
    """Its query may still be running on the server: the connection is not reused."""
    out = db_engine.pool.checkedout()
    sleep = prebuilt(select(func.pg_sleep(bindparam("seconds"))))
    autocommit = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with async_sessionmaker(autocommit)() as learner:  # its keys, on SQLAlchemy's path
        await fetch_value(learner, sleep, {"seconds": 0})
    assert await fetch_value(borrowing, SEVEN) == 7
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await fetch_value(borrowing, sleep, {"seconds": 5})
    assert not borrowing.in_transaction()  # it ran on the borrowed connection
    assert len(invalidated) == 1
    assert db_engine.pool.checkedout() == out
    assert await fetch_value(borrowing, SEVEN) == 7  # a fresh one next time


async def test_a_watched_engine_is_not_borrowed_from(
    db_engine: AsyncEngine, borrowing: AsyncSession, driver_calls: list[str]
) -> None:
    with through_sqlalchemy(db_engine) as seen:
        assert await fetch_value(borrowing, SEVEN) == 7
    assert len(seen) == 1
    assert driver_calls == []


async def test_a_dry_pool_is_the_pools_timeout_for_a_read_that_borrows(
    db_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error the 503 handler knows, after one wait (`pool_timeout`), not two."""
    url = db_engine.url.render_as_string(hide_password=False)
    small = build_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    maker = read_sessionmaker(small)
    try:
        async with maker() as learner:
            assert await fetch_value(learner, SEVEN) == 7
        pool = small.sync_engine.pool
        waits: list[str] = []

        def counted() -> Any:
            waits.append("connect")
            return type(pool).connect(pool)

        async with small.connect() as holder:  # the pool's only connection
            await holder.execute(select(literal(1)))
            monkeypatch.setattr(pool, "connect", counted)
            session = maker()
            try:
                async with session:
                    allow_borrowing(session)
                    with pytest.raises(exc.TimeoutError):
                        await fetch_value(session, SEVEN)
            finally:
                await return_borrowed(session)
        assert waits == ["connect"]
        assert pool.checkedout() == 0
    finally:
        await small.dispose()


async def test_a_taken_borrowed_connection_that_dies_is_replaced_in_autocommit(
    db_engine: AsyncEngine, borrowing: AsyncSession
) -> None:
    """After a disconnect the session connects afresh from the engine (its options, so
    autocommit), not by reviving the dead connection without them."""
    out = db_engine.pool.checkedout()
    pid = await fetch_value(borrowing, PID)
    assert (await borrowing.execute(select(func.pg_backend_pid()))).scalar_one() == pid
    async with db_engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(exc.DBAPIError) as raised:
        await borrowing.execute(select(literal(1)))
    assert raised.value.connection_invalidated
    await borrowing.rollback()
    assert (await borrowing.execute(select(func.pg_backend_pid()))).scalar_one() != pid
    raw = await (await borrowing.connection()).get_raw_connection()
    assert raw.dbapi_connection.autocommit  # type: ignore[union-attr]
    assert db_engine.pool.checkedout() == out + 1
    await borrowing.close()
    await return_borrowed(borrowing)
    assert db_engine.pool.checkedout() == out


@pytest.fixture
def greenlet_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What `statements.py` ran through `greenlet_spawn` (the sync pool API in a greenlet)."""
    from src.infrastructure.database import statements

    calls: list[str] = []
    original = statements.greenlet_spawn

    def spy(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return original(fn, *args, **kwargs)

    monkeypatch.setattr(statements, "greenlet_spawn", spy)
    return calls


async def test_a_borrowed_connection_goes_back_to_the_pool_without_a_greenlet(
    db_engine: AsyncEngine, borrowing: AsyncSession, greenlet_calls: list[str]
) -> None:
    """Nothing to send or close: straight back into the pool's queue, and reused."""
    pool = db_engine.sync_engine.pool
    out, idle = pool.checkedout(), pool.checkedin()
    pid = await fetch_value(borrowing, PID)
    assert greenlet_calls == ["connect"]  # the checkout may have to connect
    await return_borrowed(borrowing)
    assert greenlet_calls == ["connect"]
    assert pool.checkedout() == out
    assert pool.checkedin() == max(idle, 1)  # back in the queue (the first one, if it was new)
    # Still a working connection of the pool: taking them all in turn meets it.
    async with contextlib.AsyncExitStack() as stack:
        pids = set()
        for _ in range(pool.checkedin()):
            connection = await stack.enter_async_context(db_engine.connect())
            pids.add((await connection.execute(select(func.pg_backend_pid()))).scalar_one())
    assert pid in pids


async def test_a_borrowed_connection_the_pool_has_no_room_for_is_closed_in_a_greenlet(
    db_engine: AsyncEngine, greenlet_calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """An overflow connection is closed on its way back: that is I/O, so it goes through
    SQLAlchemy's greenlet, cleanly (no error logged, no connection left open)."""
    url = db_engine.url.render_as_string(hide_password=False)
    small = build_engine(url, pool_size=1, max_overflow=1)
    maker = read_sessionmaker(small)
    try:
        async with maker() as learner:  # PID's keys, on SQLAlchemy's path
            assert await fetch_value(learner, PID)
        pool = small.sync_engine.pool
        session = maker()
        async with small.connect() as holder:  # the pool's one connection
            await holder.execute(select(literal(1)))
            async with session:
                allow_borrowing(session)
                pid = await fetch_value(session, PID)  # an overflow connection
                assert pool.overflow() == 1
                assert not session.in_transaction()  # borrowed, not the session's own
        assert pool.checkedin() == 1  # the holder's went back first: no room left
        greenlet_calls.clear()
        await return_borrowed(session)
        assert greenlet_calls == ["close"]
        assert (pool.checkedout(), pool.checkedin(), pool.overflow()) == (0, 1, 0)
        async with db_engine.connect() as other:
            alive = await other.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
            assert alive.scalar_one() == 0  # closed on the server too
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await small.dispose()


@pytest.mark.parametrize("case", ["reset listener", "pool replaced"])
async def test_a_check_in_that_may_do_io_goes_through_the_greenlet(
    db_engine: AsyncEngine,
    greenlet_calls: list[str],
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    """A `reset` listener may send a statement (`DISCARD ALL`), and after `dispose()` the
    connection goes back to the old pool, not the engine's: neither is checked in bare."""
    url = db_engine.url.render_as_string(hide_password=False)
    small = build_engine(url, pool_size=2, max_overflow=0)
    maker = read_sessionmaker(small)
    resets: list[str] = []

    def discard(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        # I/O in the listener, as SQLAlchemy's recipe for PostgreSQL does.
        await_only(dbapi_connection.driver_connection.execute("DISCARD ALL"))
        resets.append("discarded")

    try:
        async with maker() as learner:
            assert await fetch_value(learner, SEVEN) == 7
        if case == "reset listener":
            event.listen(small.sync_engine.pool, "reset", discard)
        session = maker()
        async with session:
            allow_borrowing(session)
            assert await fetch_value(session, SEVEN) == 7
            assert not session.in_transaction()  # borrowed
        if case == "pool replaced":
            await small.dispose()
        greenlet_calls.clear()
        await return_borrowed(session)
        assert greenlet_calls == ["close"]
        assert resets == (["discarded"] if case == "reset listener" else [])
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await small.dispose()
