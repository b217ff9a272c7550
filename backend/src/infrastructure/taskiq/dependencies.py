"""What tasks receive: database sessions.

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

Routes do not send tasks themselves: they write them to the outbox in their transaction
(`src.infrastructure.taskiq.outbox.add`), and a relay sends them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import TaskiqDepends

from src.infrastructure.database.session import get_read_sessionmaker, get_sessionmaker

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
