"""Alembic environment: async engine, the app's settings and `Base.metadata`.

`render_as_batch` makes ALTERs work on SQLite (table copy) as well as Postgres. A caller may
pass an open (sync) connection in `config.attributes["connection"]` to run on it.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import src.modules.models  # noqa: F401 - registers every model
from src.infrastructure.config import settings
from src.infrastructure.database.models import Base
from src.infrastructure.database.session import build_engine

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        literal_binds=connection is None,
        # `app migrate` passes a callback to report each migration it applies.
        on_version_apply=config.attributes.get("on_version_apply", ()),
    )


def run_migrations_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url") or settings.DATABASE_URL)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or settings.DATABASE_URL
    engine = build_engine(url)
    async with engine.connect() as async_connection:
        await async_connection.run_sync(_run_sync)
        await async_connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif config.attributes.get("connection") is not None:
    _run_sync(config.attributes["connection"])
else:
    asyncio.run(run_migrations_online())
