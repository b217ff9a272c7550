"""`DBSession` and a plain `Depends(async_session)` are one session per request: FastAPI caches
them apart (their scopes differ), so `async_session` itself hands the open session to a second
caller instead of opening another one (and holding a second pooled connection)."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.database.session import DBSession, async_session

pytestmark = pytest.mark.unit


async def test_both_spellings_get_the_same_session():
    app = FastAPI()
    seen: list[AsyncSession] = []

    async def dependency(db: DBSession) -> AsyncSession:
        seen.append(db)
        return db

    @app.get("/both")
    async def both(
        typed: DBSession,
        plain: AsyncSession = Depends(async_session),  # noqa: B008 - the page's spelling
        via_dependency: AsyncSession = Depends(dependency),  # noqa: B008
    ) -> dict[str, bool]:
        return {"same": typed is plain is via_dependency}

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        first = await client.get("/both")
        second = await client.get("/both")
    assert first.json() == {"same": True}
    assert second.json() == {"same": True}
    assert seen[0] is not seen[1], "each request has a session of its own"
