"""Run prebuilt Core statements on the request's session: the hot-path alternative to FastCRUD.

FastCRUD builds, checks and ORM-compiles a new statement on every call (a third of a profile
read's CPU when measured). The few queries on the hot path of every request are instead built
once at import time as Core statements with bind parameters, and run here on the session's own
connection. Same session, same transaction, so `app.dependency_overrides[async_session]` still
reaches them.

On Postgres a SELECT marked `prebuilt(...)` goes one step further: it is compiled once and
sent straight to the session's asyncpg connection (asyncpg's statement cache), skipping
SQLAlchemy's execution context, cursor adapter and result objects: 7-14% of a profile read's
CPU, a fifth of `/users/me`'s (docs/performance.md). Hand-written because SQLAlchemy has no such
"compiled once, executed raw" path; what it keeps of SQLAlchemy is the compiled SQL, the
types' own bind and result processors (`UTCDateTime`, JSON, enums...) and the result keys,
learnt from the statement's first execution through SQLAlchemy, so a row comes back exactly as
it would through `Connection.execute`: the tests compare both paths. It steps aside, for
SQLAlchemy's own path, when:

- the statement is not marked (statements built per call are not worth compiling apart), not
  a SELECT, needs per-call compilation (an expanding `IN` list, a literal rendered at
  execution), repeats a column name, or has a type whose result processor needs the driver's
  column type (`Numeric`, `Float`);
- the connection is in a transaction (a write request; tests wrap theirs in one): inside a
  transaction a failed statement aborts it, so it could not be run again to get SQLAlchemy's
  error, and SQLAlchemy sends BEGIN lazily, with its first statement. Safe-method requests run
  in autocommit (`session.py`), and they are the hot path;
- anything watches statements (`echo` or the `sqlalchemy.engine` logger at INFO, execution
  listeners such as tracing or a test counting statements, a `schema_translate_map`), so
  instrumentation sees every statement;
- the driver raises anything at all: the statement is run again through SQLAlchemy (reads are
  idempotent), which raises the error the application expects (a dropped connection
  invalidates the pool and answers 503, `interfaces/errors.py`). A server error is met twice
  that way (a `statement_timeout` takes twice its time), the price of not re-implementing
  SQLAlchemy's error translation.

A GET request's session goes one step further still (`allow_borrowing`, set by
`async_session`): until SQLAlchemy needs a connection of its own, its hot reads borrow one
from the pool themselves, which costs a third of opening it through the session (a
`SessionTransaction`, an engine `Connection`, the isolation level set and reset): a profile
read's CPU fell by a fifth to a third in-process (docs/performance.md). When SQLAlchemy then
needs a connection, the session takes the borrowed one (`BorrowingSession`: no second
checkout; another session class hands it back to the pool first), and `async_session` returns
it at the end, so a request still holds at most one (straight back into the pool's queue
when that needs no I/O, without the greenlet SQLAlchemy's check-in runs in otherwise).
A borrowed connection found dead (or a read cancelled half-way) is dropped, and the read runs
again through SQLAlchemy on a fresh one: a stale connection costs a retry, not an error; after
a server error on a live one, SQLAlchemy runs the read again on that same connection and
raises its own error.

Like an `AsyncSession` itself, a session is not for concurrent use by several tasks (the raw
path does not take the asyncpg adapter's lock). Behind PgBouncer in transaction mode, turn off
asyncpg's own statement cache (`statement_cache_size=0`) as well as SQLAlchemy's.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Executable, event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None
SelectT = TypeVar("SelectT", bound=Executable)


async def fetch_one(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The first row as a dict, or None."""
    keys, rows = await _execute(db, statement, params, first=True)
    return dict(zip(keys, rows[0], strict=True)) if rows else None


async def fetch_row(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> Row | None:
    """The first row as a tuple (in the statement's column order), or None."""
    _, rows = await _execute(db, statement, params, first=True)
    return rows[0] if rows else None


async def fetch_value(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> Any:
    """The first column of the one row (a count, an id); raises when there is no row."""
    _, rows = await _execute(db, statement, params, first=True)
    if not rows:
        raise LookupError("fetch_value: the statement returned no row")
    return rows[0][0]


async def fetch_all(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every row as a dict."""
    keys, rows = await _execute(db, statement, params, first=False)
    return [dict(zip(keys, row, strict=True)) for row in rows]


# --- execution -----------------------------------------------------------------------------


def prebuilt(statement: SelectT) -> SelectT:
    """Mark a module-level SELECT as a hot read: on Postgres, in autocommit, `fetch_*` send it
    straight to asyncpg (see above). Statements built per call are not worth compiling apart
    and always take SQLAlchemy's path."""
    _hot[id(statement)] = _Hot(statement)
    return statement


@dataclass(slots=True)
class _Plan:
    """A prebuilt SELECT compiled once for one asyncpg dialect."""

    sql: str
    compiled: SQLCompiler
    binds: tuple[tuple[str, _Processor], ...]  # positional order ($1, $2...)
    results: tuple[_Processor, ...]
    keys: tuple[str, ...] | None = None  # SQLAlchemy's own, learnt from its first execution
    processed: tuple[tuple[int, Callable[[Any], Any]], ...] = ()  # the columns with a processor

    def __post_init__(self) -> None:
        self.processed = tuple(
            (index, process) for index, process in enumerate(self.results) if process is not None
        )

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = self.compiled.construct_params(params)
        return [
            process(values[name]) if process is not None else values[name]
            for name, process in self.binds
        ]

    def row(self, record: Sequence[Any]) -> Row:
        if len(record) != len(self.results):
            raise ValueError(f"{len(record)} columns, {len(self.results)} expected")
        if not self.processed:  # most columns: the driver's value as it is
            return tuple(record)
        values = list(record)
        for index, process in self.processed:
            values[index] = process(values[index])
        return tuple(values)


@dataclass(slots=True)
class _Hot:
    statement: Executable
    # None: the statement stays on SQLAlchemy's path with this dialect.
    plans: weakref.WeakKeyDictionary[Dialect, _Plan | None] = field(
        default_factory=weakref.WeakKeyDictionary
    )


# By identity (a statement's `==` builds SQL); entries keep their statement, so ids stay theirs.
_hot: dict[int, _Hot] = {}
_sql_log = logging.getLogger("sqlalchemy.engine.Engine")


async def _execute(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None, *, first: bool
) -> tuple[tuple[str, ...], list[Row]]:
    failed = False
    if _BORROWING in db.info and not db.in_transaction():
        done, failed = await _borrowed_execute(db, statement, params, first=first)
        if done is not None:
            return done
        # failed: straight to SQLAlchemy's path, one raw try per read
    connection = await db.connection()
    plan, driver = (None, None) if failed else await _hot_path(connection, statement)
    if plan is not None and plan.keys is not None:
        try:
            return plan.keys, await _fetch(driver, plan, params, first=first)
        except Exception:  # noqa: S110 - SQLAlchemy runs it again and raises its own error
            pass
    result = await connection.execute(statement, params)
    keys = tuple(result.keys())
    if plan is not None and plan.keys is None:
        _learn_keys(connection, statement, plan, keys)
    if first:
        row = result.first()
        return keys, [] if row is None else [tuple(row)]
    return keys, [tuple(row) for row in result]


async def _fetch(
    driver: Any, plan: _Plan, params: Mapping[str, Any] | None, *, first: bool
) -> list[Row]:
    arguments = plan.arguments(params)
    if first:
        record = await driver.fetchrow(plan.sql, *arguments)
        records = [] if record is None else [record]
    else:
        records = await driver.fetch(plan.sql, *arguments)
    return [plan.row(record) for record in records]


# --- borrowing: the request's autocommit session, before SQLAlchemy opened its connection -----

_BORROWING = "src.db.borrowing"  # session.info: the session lets hot reads borrow
_BORROWED = "src.db.borrowed"  # session.info: the pooled connection they borrowed
_ADOPTED = "src.db.adopted"  # session.info: the engine `Connection` the session made of it


def allow_borrowing(session: AsyncSession) -> None:
    """Let hot reads on this autocommit session take its pooled connection themselves.

    Opening the connection through the session (a `SessionTransaction`, an engine
    `Connection`, the isolation level set on checkout and reset on return) costs about three
    times the pool checkout itself. A borrowed connection is the pool's own, checked out
    with its events (the idle ping, `session.py`) and its timeout (a dry pool raises what the
    503 handler expects). When SQLAlchemy then needs a connection, a `BorrowingSession`
    takes that one; any other session hands it back to the pool before it checks out its
    own. Either way the request holds at most one, and `return_borrowed` (after the session
    closed) hands it back at the end.
    """
    session.info[_BORROWING] = True


async def return_borrowed(session: AsyncSession) -> None:
    """Hand the borrowed connection, if any, back to the pool, and borrow no more (the
    request's end, after the session closed)."""
    if returned_without_io(session):
        return
    info = session.info
    borrowed: PoolProxiedConnection | None = info.pop(_BORROWED, None)
    if borrowed is not None:
        await greenlet_spawn(borrowed.close)
    adopted: Connection | None = info.pop(_ADOPTED, None)
    if adopted is not None:
        await greenlet_spawn(adopted.close)


def returned_without_io(session: AsyncSession) -> bool:
    """`return_borrowed` when it needs no I/O (nothing borrowed, or a connection the pool
    takes back as it is), done at once: True; False, with nothing done but the borrowing
    stopped, when it needs `return_borrowed`."""
    info = session.info
    info.pop(_BORROWING, None)
    if _ADOPTED in info:
        return False
    borrowed: PoolProxiedConnection | None = info.get(_BORROWED)
    if borrowed is None:
        return True
    if not _checks_in_without_io(session, borrowed):
        return False
    del info[_BORROWED]
    borrowed.close()
    return True


def _checks_in_without_io(session: AsyncSession, borrowed: PoolProxiedConnection) -> bool:
    """Whether the pool takes `borrowed` back without a statement or a close, so the check-in
    can skip `greenlet_spawn` (two of them, out and back, cost a third of a pooled read's
    CPU): a live, attached connection outside any transaction (the reset on return then
    sends nothing) going back to the engine's current queue pool (not one replaced by
    `dispose()`) with room for it (one without room closes it), and no `reset` listener
    (SQLAlchemy's recipe for `DISCARD ALL` runs a statement there). `checkin` listeners
    must not do I/O (the product's stamp the time)."""
    engine = session.bind
    driver = borrowed.driver_connection
    if (
        not isinstance(engine, AsyncEngine)
        or driver is None
        or not borrowed.is_valid
        or borrowed.is_detached
    ):
        return False
    pool = engine.sync_engine.pool
    return (
        isinstance(pool, QueuePool)
        and getattr(borrowed, "_pool", None) is pool
        and pool.checkedin() < pool.size()
        and not pool.dispatch.reset
        and not driver.is_closed()
        and not driver.is_in_transaction()
        # The SQLAlchemy adapter's own transaction, which the reset would roll back.
        and getattr(borrowed.dbapi_connection, "_transaction", None) is None
    )


class BorrowingSession(Session):
    """The sync session of request read sessions: when SQLAlchemy needs a connection after
    a hot read borrowed one, it takes that one (an engine `Connection` around it, with the
    engine's execution options and events) instead of a second checkout from the pool.

    From then on `get_bind()` answers that `Connection` (not the engine) for the session's
    own bind, until the request ends, even across `close()`/`commit()`: ask `db.bind` for
    the engine."""

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine | Connection:
        bind = super().get_bind(mapper, **kw)
        if bind is not self.bind or not isinstance(bind, Engine):  # an explicit bind
            return bind
        info = self.info
        adopted: Connection | None = info.get(_ADOPTED)
        if adopted is not None:
            if not (adopted.invalidated or adopted.closed):
                return adopted
            # Dropped (a disconnect): it would reconnect without the engine's options
            # (autocommit); the session connects afresh from the engine instead.
            del info[_ADOPTED]
            adopted.close()
            return bind
        borrowed = info.get(_BORROWED)
        if borrowed is None:
            return bind
        adopted = Connection(bind, connection=borrowed)
        info[_ADOPTED] = adopted
        del info[_BORROWED]
        return adopted


@event.listens_for(Session, "after_transaction_create")
def _return_before_the_session_connects(session: Session, transaction: Any) -> None:
    # Before its first statement a session creates its transaction, then checks out its own
    # connection: one that did not take the borrowed one (see BorrowingSession) gives it
    # back first, so the request holds one pooled connection at a time.
    borrowed = session.info.pop(_BORROWED, None)
    if borrowed is not None:
        borrowed.close()


async def _borrowed_execute(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None, *, first: bool
) -> tuple[tuple[tuple[str, ...], list[Row]] | None, bool]:
    """(the read's keys and rows, False) on a borrowed connection; (None, False) when the
    read is not for this path; (None, True) when the driver raised (a lost connection is
    dropped, a live one kept for SQLAlchemy's run of the same read)."""
    engine = db.bind
    if not isinstance(engine, AsyncEngine) or _ADOPTED in db.info:  # then the session's path
        return None, False
    sync = engine.sync_engine
    dialect = sync.dialect
    plan = _plan_for(statement, dialect)
    if plan is None or plan.keys is None or _watched(sync, sync):  # keys: learnt there first
        return None, False
    borrowed: PoolProxiedConnection | None = db.info.get(_BORROWED)
    if borrowed is None:
        try:
            borrowed = await greenlet_spawn(sync.pool.connect)
        except dialect.loaded_dbapi.Error as error:  # the server is down: SQLAlchemy's error,
            # raised as its own `engine.connect()` raises it (a dry pool's TimeoutError and
            # any other error pass unchanged, as they do there): one connect, one wait.
            Connection._handle_dbapi_exception_noconnection(error, dialect, sync)
        db.info[_BORROWED] = borrowed
    driver = borrowed.driver_connection
    if driver is None or driver.is_in_transaction():  # pragma: no cover - never left so
        db.info.pop(_BORROWED, None)
        await greenlet_spawn(borrowed.invalidate)
        return None, False
    try:
        return (plan.keys, await _fetch(driver, plan, params, first=first)), False
    except BaseException as error:
        if isinstance(error, Exception) and not _lost(driver, error):
            # A server error on a live connection: SQLAlchemy runs the read again, on this
            # same connection (a BorrowingSession takes it) or after it went back to the
            # pool (any other session's transaction hands it back), and raises its error.
            return None, True
        db.info.pop(_BORROWED, None)
        await greenlet_spawn(borrowed.invalidate)  # dead, or cancelled in the middle
        if not isinstance(error, Exception):
            raise
        return None, True  # SQLAlchemy runs it again, on a fresh connection


def _lost(driver: Any, error: Exception) -> bool:
    """Whether the connection is gone (or unusable) after `error`: closed, a client-side
    error without a server state, or a connection exception / server shutdown (08, 57P)."""
    state = getattr(error, "sqlstate", None)
    return bool(driver.is_closed() or not isinstance(state, str) or state.startswith(("08", "57P")))


async def _hot_path(connection: AsyncConnection, statement: Executable) -> tuple[_Plan | None, Any]:
    """The statement's plan and the asyncpg connection, when this call may take the raw path;
    else (None, None)."""
    plan = _plan_for(statement, connection.dialect)
    if plan is None or _instrumented(connection):  # no need to look at the connection
        return None, None
    driver = await _driver_if_ready(connection)
    return (plan, driver) if driver is not None else (None, None)


def _plan_for(statement: Executable, dialect: Dialect) -> _Plan | None:
    """The prebuilt statement's plan for an asyncpg `dialect` (compiled on first use), or
    None: not prebuilt, another driver, or known to stay on SQLAlchemy's path."""
    hot = _hot.get(id(statement))
    if hot is None or hot.statement is not statement or dialect.driver != "asyncpg":
        return None
    if dialect not in hot.plans:
        hot.plans[dialect] = _compile(statement, dialect)
    return hot.plans[dialect]


def _learn_keys(
    connection: AsyncConnection, statement: Executable, plan: _Plan, keys: tuple[str, ...]
) -> None:
    if len(set(keys)) == len(keys) == len(plan.results):
        plan.keys = keys
    else:  # repeated names (SQLAlchemy keeps the last): its path keeps its semantics
        _hot[id(statement)].plans[connection.dialect] = None


def _instrumented(connection: AsyncConnection) -> bool:
    """Whether anything watches statements: SQL logging, execution listeners, a schema map."""
    sync = connection.sync_connection
    return sync is None or _watched(sync, sync.engine)


def _watched(target: Connection | Engine, engine: Engine) -> bool:
    if engine.echo or _sql_log.isEnabledFor(logging.INFO):
        return True
    dispatch = target.dispatch
    if (
        dispatch.before_cursor_execute
        or dispatch.after_cursor_execute
        or dispatch.before_execute
        or dispatch.after_execute
    ):
        return True
    return "schema_translate_map" in target.get_execution_options()


def _compile(statement: Executable, dialect: Dialect) -> _Plan | None:
    if not isinstance(statement, Select) or statement.get_execution_options():
        return None
    try:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            return None
        binds = compiled.binds
        if any(bind.expanding or bind.literal_execute for bind in binds.values()):
            return None
        if "__[POSTCOMPILE_" in compiled.string:
            return None
        return _Plan(
            sql=compiled.string,
            compiled=compiled,
            binds=tuple(
                (name, binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup
            ),
            results=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in statement.selected_columns
            ),
        )
    except Exception:  # a type whose processors need the driver's column type (Numeric...)
        return None


async def _driver_if_ready(connection: AsyncConnection) -> Any:
    """The asyncpg connection, when it is in autocommit (see the module docstring)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not getattr(raw.dbapi_connection, "autocommit", False):
        return None
    if driver.is_in_transaction():  # autocommit, but a transaction opened by hand (raw SQL)
        return None
    return driver
