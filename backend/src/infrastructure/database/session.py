"""The one engine and session factory of the process, and `async_session`, THE db dependency.

Every route that touches the database depends on `async_session`, so
`app.dependency_overrides[async_session] = ...` redirects all reads and writes (tests do this).
The engine is created on first use, so importing the app opens no connection.

The per-request budget (see docs/performance.md):
- A request holds at most one pooled connection: one session per request, taken at its first
  statement and handed back when the endpoint returns (`DBSession` is a function-scoped
  dependency), before the response is serialised and sent.
- Safe-method requests run in autocommit: no BEGIN/ROLLBACK round trips.
- No pre-ping on the hot path: a connection is pinged before use only when it sat idle in the
  pool for longer than `DATABASE_POOL_PING_IDLE_SECONDS` (a busy pool never pings; a restarted
  database or a dropped idle connection is still caught before a request uses it). A connection
  that dies while in use invalidates the pool (SQLAlchemy's disconnect handling) and the request
  answers 503 (`interfaces/errors.py`).
- A dry pool is a fast 503: a request waits at most `DATABASE_POOL_TIMEOUT` seconds for a
  connection, then answers 503 with `Retry-After`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

from anyio import CancelScope
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from src.infrastructure.config import settings
from src.infrastructure.database.statements import (
    BorrowingSession,
    allow_borrowing,
    return_borrowed,
    returned_without_io,
)


def build_engine(url: str, *, echo: bool = False, **overrides: Any) -> AsyncEngine:
    """An engine configured for the backend `url` names (pool for Postgres, pragmas for SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, **overrides)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "checkin", _sqlite_driver_autocommit)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    options: dict[str, Any] = {
        "pool_size": settings.DATABASE_POOL_SIZE,
        "max_overflow": settings.DATABASE_MAX_OVERFLOW,
        "pool_timeout": settings.DATABASE_POOL_TIMEOUT,
        "pool_recycle": settings.DATABASE_POOL_RECYCLE,
        "pool_pre_ping": settings.DATABASE_POOL_PRE_PING,
    }
    options.update(overrides)
    engine = create_async_engine(url, echo=echo, **options)
    idle = settings.DATABASE_POOL_PING_IDLE_SECONDS
    if idle >= 0 and not options.get("pool_pre_ping"):
        dialect = engine.dialect
        event.listen(engine.sync_engine, "checkin", _stamp_checkin)

        def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
            checked_in = record.info.get(_CHECKED_IN)
            if checked_in is None or time.monotonic() - checked_in <= idle:
                return  # new, or used moments ago: no round trip
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:
                # A dead idle connection usually means the server restarted: the pool drops
                # every connection as old as this one, and checks out (or opens) a fresh one.
                raise InvalidatePoolError(str(error)) from error

        event.listen(engine.sync_engine, "checkout", ping_if_idle)
    return engine


_CHECKED_IN = "checked_in_at"


def _stamp_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN: the driver's own transaction handling breaks
    # SAVEPOINT (begin_nested), which the services and the test fixtures rely on.
    dbapi_connection.isolation_level = None
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_driver_autocommit(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Returning from an AUTOCOMMIT (read) session resets the driver to its own transaction
    # handling; put it back under SQLAlchemy's control for the next checkout.
    if dbapi_connection is not None:
        dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # a read-only request: WAL readers need no transaction
    # IMMEDIATE takes the write lock up front: two concurrent writers queue (busy_timeout)
    # instead of deadlocking on a lock upgrade. SQLite has one writer at a time anyway.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache(maxsize=1)
def get_engine() -> AsyncEngine:
    return build_engine(settings.DATABASE_URL, echo=settings.DATABASE_ECHO)


@lru_cache(maxsize=1)
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False, autoflush=False)


@lru_cache(maxsize=1)
def get_read_sessionmaker() -> async_sessionmaker[AsyncSession]:
    """Sessions for safe-method requests: autocommit, so a read costs no BEGIN/ROLLBACK round
    trips. Each statement still sees a committed snapshot, exactly as under READ COMMITTED."""
    return read_sessionmaker(get_engine())


class LazySession(AsyncSession):
    """An `AsyncSession` built at its first use: until then it is an empty shell.

    Every GET request gets a session (the rate limiter and most routes declare `DBSession`),
    and many never use it: a cache hit, an anonymous request the limiter answers alone, a
    404 decided before any query. Building the session (its sync `Session`, the proxy
    registry) and closing it (a task, a greenlet) cost about a tenth of such a request.
    This shell defers both: the first attribute that needs the real session builds it with
    the arguments it was given, and closing a shell that was never used does nothing.
    `info` written before that (say `allow_borrowing`) is kept and handed to the session.
    A shell answers `bind` (its engine) and `in_transaction()` (False) without being built,
    so hot reads that borrow their connection (`statements.py`) never build it either.
    """

    def __init__(self, bind: Any = None, **kw: Any) -> None:
        self.__dict__["_deferred"] = (bind, kw, dict(kw.get("info") or {}))

    @property
    def opened(self) -> bool:
        """Whether the real session was built (the shell was used)."""
        return "_deferred" not in self.__dict__

    @property
    def info(self) -> dict[Any, Any]:
        deferred = self.__dict__.get("_deferred")
        if deferred is not None:
            return deferred[2]  # type: ignore[no-any-return]
        return self.sync_session.info

    @property
    def bind(self) -> Any:
        deferred = self.__dict__.get("_deferred")
        if deferred is not None:
            return deferred[0]
        return AsyncSession.bind.fget(self)  # type: ignore[attr-defined]

    @bind.setter
    def bind(self, bind: Any) -> None:
        self.sync_session  # noqa: B018 - builds the session, whose bind this sets
        AsyncSession.bind.fset(self, bind)  # type: ignore[attr-defined]

    def in_transaction(self) -> bool:
        return self.opened and super().in_transaction()

    def __getattr__(self, name: str) -> Any:
        deferred = self.__dict__.get("_deferred")
        if deferred is None:  # built already: the attribute really is missing
            raise AttributeError(name)
        bind, kw, info = deferred
        AsyncSession.__init__(self, bind, **kw)  # if this raises, the shell stays a shell
        info.update(self.sync_session.info)
        self.sync_session.info = info  # the same dict before and after: no stale reference
        del self.__dict__["_deferred"]
        return getattr(self, name)

    async def close(self) -> None:
        if self.opened:
            await super().close()

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        if self.opened:
            await super().__aexit__(type_, value, traceback)


def read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Autocommit sessions on `engine`, built at their first use (`LazySession`), whose
    hot reads may borrow their connection (`statements.py`)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        class_=LazySession,
        expire_on_commit=False,
        autoflush=False,
        sync_session_class=BorrowingSession,
    )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_WRITES_ON_GET = "__writes_on_get__"
EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


def writes_on_get(endpoint: EndpointT) -> EndpointT:
    """Mark a GET endpoint that must write, in one transaction: its requests get a
    transactional session instead of the autocommit one safe methods get.

    For the rare GET that a third party makes the browser send and that changes state (an
    OAuth callback: the provider sends the browser back with a GET). Decorate the endpoint
    function itself (below the router's decorator).
    """
    setattr(endpoint, _WRITES_ON_GET, True)
    return endpoint


def _transactional(request: Request) -> bool:
    if request.method not in SAFE_METHODS:
        return True
    route = request.scope.get("route")  # set by FastAPI's routing before any dependency runs
    return bool(getattr(getattr(route, "endpoint", None), _WRITES_ON_GET, False))


_REQUEST_SESSION = "src.db.session"  # request.scope key: the request's session, while open


async def async_session(request: Request) -> AsyncSession:
    """The request's session; whatever the request did not commit is rolled back when the
    endpoint returns.

    GET/HEAD/OPTIONS requests must not write (beyond single-statement bookkeeping such as a
    session's last-seen time), so they run in autocommit; every other method, and a GET
    endpoint marked `writes_on_get`, runs in one transaction that the service commits.

    One session per request however it is asked for: `DBSession` and a plain
    `Depends(async_session)` are cached apart by FastAPI (their scopes differ), so a second
    call during the same request returns the session the first one opened instead of opening
    another (and holding a second pooled connection).

    Not a `yield` dependency: its close goes on FastAPI's function-scoped exit stack (so the
    session closes when the endpoint returns, whichever spelling asked for it), without the
    generator, context managers and cancel scopes FastAPI wraps around a `yield` dependency
    (a tenth of a cache hit's CPU). Closing a session that was never used and borrowed
    nothing, or only a connection the pool takes back as it is, needs no I/O and is done
    there at once; any other close runs shielded from cancellation, as FastAPI runs a
    `yield` dependency's exit. A `yield` dependency that still uses the session after its
    `yield` must be function-scoped too (`Depends(my_dependency, scope="function")`), so that
    its exit runs before the session closes.
    """
    existing: AsyncSession | None = request.scope.get(_REQUEST_SESSION)
    if existing is not None:
        return existing
    stack = request.scope.get("fastapi_function_astack")
    if not isinstance(stack, AsyncExitStack):
        raise RuntimeError(
            "async_session is a FastAPI dependency; outside a route use request_session()"
        )
    session = _open_request_session(request, get_sessionmaker, get_read_sessionmaker)
    stack.push_async_callback(_close_request_session, request, session)
    return session


@asynccontextmanager
async def request_session(
    request: Request,
    writer: Callable[[], async_sessionmaker[AsyncSession]],
    reader: Callable[[], async_sessionmaker[AsyncSession]],
) -> AsyncIterator[AsyncSession]:
    """The request's session from `writer` (a transaction) or `reader` (autocommit, whose
    hot reads may borrow the pooled connection themselves: `statements.py`), closed on
    exit; what `async_session` does, for any pair of session factories."""
    existing: AsyncSession | None = request.scope.get(_REQUEST_SESSION)
    if existing is not None:
        yield existing
        return
    session = _open_request_session(request, writer, reader)
    try:
        yield session
    finally:
        await _close_request_session(request, session)


def _open_request_session(
    request: Request,
    writer: Callable[[], async_sessionmaker[AsyncSession]],
    reader: Callable[[], async_sessionmaker[AsyncSession]],
) -> AsyncSession:
    transactional = _transactional(request)
    session = (writer() if transactional else reader())()
    request.scope[_REQUEST_SESSION] = session
    if not transactional:
        allow_borrowing(session)
    return session


async def _close_request_session(request: Request, session: AsyncSession) -> None:
    request.scope.pop(_REQUEST_SESSION, None)
    if isinstance(session, LazySession) and not session.opened and returned_without_io(session):
        return  # an unbuilt shell (a cache hit, a borrowed read): nothing else to undo
    with CancelScope(shield=True):
        try:
            await session.close()  # rolls back what was not committed
        finally:
            await return_borrowed(session)


async def dispose_engine() -> None:
    if get_engine.cache_info().currsize:
        await get_engine().dispose()


DBSession = Annotated[AsyncSession, Depends(async_session, scope="function")]
"""The type routes and dependencies declare to receive the request's database session.

Function-scoped: the session (and its connection) is closed as soon as the endpoint returns,
before the response is sent to a client that may read it slowly. FastAPI requires a `yield`
dependency that takes `DBSession` to be function-scoped too:
`Depends(my_dependency, scope="function")`."""


def pool_status() -> dict[str, int] | None:
    """Connection pool usage for metrics; None before the engine exists or for SQLite pools."""
    if not get_engine.cache_info().currsize:
        return None
    pool = get_engine().pool
    if not isinstance(pool, QueuePool):
        return None
    # QueuePool.overflow() counts from -size (connections not opened yet): report 0 then.
    overflow = max(pool.overflow(), 0)
    return {"size": pool.size(), "checked_out": pool.checkedout(), "overflow": overflow}
