"""The task outbox as tests see it: the rows a route wrote (in the test's transaction or
committed), and a way to make backed-off rows due now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from taskiq import AsyncTaskiqDecoratedTask

from src.infrastructure.database.models import utcnow
from src.infrastructure.taskiq.outbox import TaskOutbox


async def outbox_rows(
    db: AsyncSession | AsyncEngine, task: AsyncTaskiqDecoratedTask[Any, Any] | None = None
) -> list[dict[str, Any]]:
    """The outbox rows (as dicts, oldest first), all or those of `task`. Pass the test's
    `db_session` to see a `client` request's rows, or `db_engine` for committed ones."""
    query = select(*TaskOutbox.__table__.columns).order_by(TaskOutbox.created_at)
    if task is not None:
        query = query.where(TaskOutbox.task_name == task.task_name)
    if isinstance(db, AsyncSession):
        return [dict(row._mapping) for row in (await db.execute(query)).all()]
    reader = db.execution_options(isolation_level="AUTOCOMMIT")
    async with reader.connect() as connection:
        return [dict(row._mapping) for row in (await connection.execute(query)).all()]


async def make_due(db_engine: AsyncEngine) -> None:
    """Every unsent row due now (skips the backoff a test does not want to wait for)."""
    async with db_engine.begin() as connection:
        await connection.execute(
            update(TaskOutbox).where(TaskOutbox.sent_at.is_(None)).values(next_attempt_at=utcnow())
        )
