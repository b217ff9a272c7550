"""Run prebuilt Core statements on the request's session: the hot-path alternative to FastCRUD.

FastCRUD builds, checks and ORM-compiles a new statement on every call (a third of a profile
read's CPU when measured). The few queries on the hot path of every request are instead built
once at import time as Core statements with bind parameters, and run here on the session's own
connection. Same session, same transaction, so `app.dependency_overrides[async_session]` still
reaches them.

On Postgres a SELECT goes one step further: it is compiled once per statement and sent straight
to the session's asyncpg connection (its prepared-statement cache), skipping SQLAlchemy's
execution context, cursor adapter and result objects: 7% of a profile read's CPU, 19% of
`/users/me`'s (docs/performance.md). Hand-written because SQLAlchemy has no such "compiled
once, executed raw" path; what it keeps of SQLAlchemy is the compiled SQL and the types' own
bind and result processors (`UTCDateTime`, JSON, enums...), so a row comes back exactly as it
would through `Connection.execute`: the tests compare both paths. It steps aside, for
SQLAlchemy's own path, when:

- the statement is not a SELECT, or needs per-call compilation (an expanding `IN` list, a
  literal rendered at execution);
- the connection is in a transaction (a write request; tests wrap theirs in one): inside a
  transaction a failed statement aborts it, so it could not be run again to get SQLAlchemy's
  error, and SQLAlchemy sends BEGIN lazily, with its first statement. Safe-method requests run
  in autocommit (`session.py`), and they are the hot path;
- anything listens to statement execution (`echo`, a `before_cursor_execute` listener such as
  tracing or a test counting statements), so instrumentation sees every statement;
- the driver raises anything at all: the statement is run again through SQLAlchemy (reads are
  idempotent), which raises the error the application expects (a dropped connection
  invalidates the pool and answers 503, `interfaces/errors.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler

Row = tuple[Any, ...]
_Processor = Callable[[Any], Any] | None


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


@dataclass(frozen=True, slots=True)
class _Plan:
    """A SELECT compiled once for the asyncpg dialect."""

    sql: str
    compiled: SQLCompiler
    binds: tuple[tuple[str, _Processor], ...]  # positional order ($1, $2...)
    results: tuple[_Processor, ...]
    keys: tuple[str, ...]

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = self.compiled.construct_params(params)
        return [
            process(values[name]) if process is not None else values[name]
            for name, process in self.binds
        ]

    def row(self, record: Sequence[Any]) -> Row:
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self.results, record, strict=True)
        )


_UNSUPPORTED = object()  # a statement the raw path leaves to SQLAlchemy
# By identity (a statement's `==` builds SQL); the statement is kept so its id is never reused.
_plans: dict[tuple[int, int], tuple[Executable, _Plan | object]] = {}
_MAX_PLANS = 512  # prebuilt statements are a few dozen; ad-hoc ones must not grow this forever


async def _execute(
    db: AsyncSession, statement: Executable, params: Mapping[str, Any] | None, *, first: bool
) -> tuple[tuple[str, ...], list[Row]]:
    connection = await db.connection()
    plan = _plan(connection, statement)
    if plan is not None:
        driver = await _driver_if_ready(connection)
        if driver is not None:
            try:
                arguments = plan.arguments(params)
                if first:
                    record = await driver.fetchrow(plan.sql, *arguments)
                    records = [] if record is None else [record]
                else:
                    records = await driver.fetch(plan.sql, *arguments)
                return plan.keys, [plan.row(record) for record in records]
            except Exception:  # noqa: S110 - SQLAlchemy runs it again and raises its own error
                pass
    result = await connection.execute(statement, params)
    keys = tuple(result.keys())
    if first:
        row = result.first()
        return keys, [] if row is None else [tuple(row)]
    return keys, [tuple(row) for row in result]


def _plan(connection: AsyncConnection, statement: Executable) -> _Plan | None:
    dialect = connection.dialect
    if dialect.driver != "asyncpg" or _instrumented(connection):
        return None
    key = (id(statement), id(dialect))
    known = _plans.get(key)
    if known is None or known[0] is not statement:
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        known = _plans[key] = (statement, _compile(statement, dialect))
    plan = known[1]
    return plan if isinstance(plan, _Plan) else None


def _instrumented(connection: AsyncConnection) -> bool:
    sync = connection.sync_connection
    if sync is None:
        return True
    if sync.engine.echo:
        return True
    dispatch = sync.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def _compile(statement: Executable, dialect: Dialect) -> _Plan | object:
    if not isinstance(statement, Select):
        return _UNSUPPORTED
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
        return _UNSUPPORTED
    binds = compiled.binds
    if any(bind.expanding or bind.literal_execute for bind in binds.values()):
        return _UNSUPPORTED
    if "__[POSTCOMPILE_" in compiled.string:
        return _UNSUPPORTED
    columns = list(statement.selected_columns)
    keys = tuple(statement.selected_columns.keys())
    if len(set(keys)) != len(keys):
        return _UNSUPPORTED  # duplicate names: SQLAlchemy's own keys, through its own path
    return _Plan(
        sql=compiled.string,
        compiled=compiled,
        binds=tuple(
            (name, binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup
        ),
        results=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ),
        keys=keys,
    )


async def _driver_if_ready(connection: AsyncConnection) -> Any:
    """The asyncpg connection, when it is in autocommit (see the module docstring)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not getattr(raw.dbapi_connection, "autocommit", False):
        return None
    if driver.is_in_transaction():  # autocommit, but a transaction opened by hand (raw SQL)
        return None
    return driver
