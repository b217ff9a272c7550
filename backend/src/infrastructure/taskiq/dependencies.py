"""What tasks and routes receive: database sessions for tasks, the broker for routes.

Tasks declare their database session as a taskiq dependency, on the app's own engine
(`src.infrastructure.database.session`): the API, the worker and the scheduler share one
recipe, and a task sees the database exactly as a request does, committed data only.

    @default_broker.task
    async def close_stale_orders(db: TaskDB) -> None:
        ...
        await db.commit()

- `TaskDB`: a transaction; commit what you write, anything else is rolled back.
- `TaskReadDB`: autocommit reads, like a GET request's session. On SQLite a read in a `TaskDB`
  starts a write transaction (`BEGIN IMMEDIATE`), so read through `TaskReadDB` first and open
  `TaskDB` only when there is something to write.

Routes send tasks through the `TaskBroker` dependency (the default broker), so tests can
redirect every task a route sends: `app.dependency_overrides[task_broker] = lambda: other`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, AsyncTaskiqTask, TaskiqDepends

from src.infrastructure.database.session import get_read_sessionmaker, get_sessionmaker
from src.infrastructure.taskiq import brokers

logger = logging.getLogger(__name__)


# When a task raises, taskiq throws its exception into each of its dependencies; re-raised
# there, it would be logged again (with its trace) as a "teardown" failure of every session.
# The receiver logs the task's failure once; the sessions just close.


async def task_session() -> AsyncIterator[AsyncSession]:
    """A session in a transaction: what the task does not commit is rolled back."""
    async with get_sessionmaker()() as session:
        with contextlib.suppress(Exception):
            yield session


async def task_read_session() -> AsyncIterator[AsyncSession]:
    """An autocommit session for reads."""
    async with get_read_sessionmaker()() as session:
        with contextlib.suppress(Exception):
            yield session


TaskDB = Annotated[AsyncSession, TaskiqDepends(task_session)]
TaskReadDB = Annotated[AsyncSession, TaskiqDepends(task_read_session)]


async def task_broker() -> AsyncBroker:
    """The broker routes send tasks to (FastAPI dependency; async, so it runs on the loop
    instead of in a worker thread)."""
    return brokers.default_broker  # read per call: a test's monkeypatch of it reaches routes


TaskBroker = Annotated[AsyncBroker, Depends(task_broker)]


async def enqueue(
    task: AsyncTaskiqDecoratedTask[Any, Any],
    *args: Any,
    broker: AsyncBroker | None = None,
    **kwargs: Any,
) -> AsyncTaskiqTask[Any] | None:
    """Send `task(*args, **kwargs)` to `broker` (default: the task's own); never raises.

    For work that follows a committed change and must not undo it: if the broker cannot take
    the message, the error is logged and None returned, and the request still succeeds.
    """
    kicker = task.kicker()
    if broker is not None:
        kicker = kicker.with_broker(broker)
    try:
        return await kicker.kiq(*args, **kwargs)
    except Exception:
        logger.exception("could not send task %s", task.task_name)
        return None
