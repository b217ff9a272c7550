"""One write, one commit: unique-constraint races become a 409 instead of a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.modules.common.exceptions import ConflictError, DuplicateValueError


@asynccontextmanager
async def commit_or_conflict(
    db: AsyncSession,
    detail: str | Callable[[str], str],
    error: type[ConflictError] = DuplicateValueError,
) -> AsyncIterator[None]:
    """Commit what the block wrote; on an integrity error roll it all back and raise `error`.

    `detail` may be a function of the database's error text, to name the column that clashed.
    """
    try:
        yield
        await db.commit()
    except IntegrityError as exc:
        await db.rollback()
        message = detail(str(exc.orig).lower()) if callable(detail) else detail
        raise error(message) from exc
