"""Fixtures for the task tests: committed users, a user's welcome-email mark, test brokers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from src.infrastructure.database.session import get_sessionmaker
from src.infrastructure.taskiq import build_broker
from src.infrastructure.taskiq.brokers import drain
from src.modules.user.models import User
from src.modules.user.tasks import send_welcome_email
from tests.helpers.factories import create_user


async def welcome_sent_at(db_engine: AsyncEngine, user_id: int) -> datetime | None:
    """Read committed state on a connection of the test's own. Autocommit: on SQLite a
    transaction would take the write lock and could starve the process under test."""
    reader = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with reader.connect() as connection:
        return await connection.scalar(select(User.welcome_email_sent_at).where(User.id == user_id))


@pytest_asyncio.fixture
async def committed_user(clean_tables: None) -> dict[str, Any]:
    """A user committed through the app's engine (tables emptied after the test)."""
    async with get_sessionmaker()() as db:
        return await create_user(db)


@pytest_asyncio.fixture
async def fast_broker() -> AsyncIterator[AsyncBroker]:
    """An in-memory broker from the app's recipe with short retry delays (50 ms, 100 ms...),
    running the real welcome-email task. Tests pass it explicitly (`drain(fast_broker)` also
    publishes the committed outbox rows to it)."""
    broker = build_broker(TASKIQ_BROKER="memory", TASKIQ_RETRY_DELAY_SECONDS=0.05)
    broker.register_task(send_welcome_email.original_func, task_name=send_welcome_email.task_name)
    yield broker
    await drain(broker)
