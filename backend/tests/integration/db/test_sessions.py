"""The app's own sessions (not the test override): reads in autocommit, writes in a transaction."""

import asyncio

import pytest
from sqlalchemy import func, insert, select
from starlette.requests import Request

from src.infrastructure.database.session import async_session, get_sessionmaker, writes_on_get
from src.modules.tier.models import Tier


class _Route:
    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint


def _request(method: str, endpoint=None) -> Request:
    scope = {"type": "http", "method": method, "headers": []}
    if endpoint is not None:
        scope["route"] = _Route(endpoint)  # what FastAPI's routing leaves in the scope
    return Request(scope)


async def _session(method: str, endpoint=None):
    generator = async_session(_request(method, endpoint))
    return generator, await anext(generator)


@pytest.mark.integration
async def test_a_write_after_a_read_keeps_savepoints_and_atomicity(clean_tables):
    reader_gen, reader = await _session("GET")
    await reader.execute(select(func.count()).select_from(Tier))
    await reader_gen.aclose()

    writer_gen, writer = await _session("POST")
    await writer.execute(insert(Tier).values(name="kept"))
    nested = await writer.begin_nested()
    await writer.execute(insert(Tier).values(name="undone"))
    await nested.rollback()
    await writer.commit()
    await writer_gen.aclose()

    async with get_sessionmaker()() as check:
        names = set((await check.scalars(select(Tier.name))).all())
    assert names == {"kept"}


@pytest.mark.integration
async def test_an_unfinished_write_request_leaves_nothing(clean_tables):
    writer_gen, writer = await _session("PATCH")
    await writer.execute(insert(Tier).values(name="half-written"))
    await writer_gen.aclose()  # the request ended without commit (an error, say)

    async with get_sessionmaker()() as check:
        assert await check.scalar(select(func.count()).select_from(Tier)) == 0


@pytest.mark.integration
async def test_reads_are_not_blocked_by_an_open_write_transaction(clean_tables):
    writer_gen, writer = await _session("POST")
    await writer.execute(insert(Tier).values(name="pending"))  # holds the write lock

    reader_gen, reader = await _session("GET")
    count = await asyncio.wait_for(reader.scalar(select(func.count()).select_from(Tier)), timeout=3)
    await reader_gen.aclose()
    await writer.rollback()
    await writer_gen.aclose()

    assert count == 0  # uncommitted rows are invisible, and the read did not wait


@pytest.mark.integration
async def test_a_get_marked_writes_on_get_runs_in_one_transaction(clean_tables):
    """An OAuth callback is a GET that writes: marked, it gets a transaction (nothing is kept
    unless it commits), where a plain GET's statements each commit on their own."""

    @writes_on_get
    async def callback() -> None: ...

    async def plain() -> None: ...

    marked_gen, marked = await _session("GET", callback)
    await marked.execute(insert(Tier).values(name="half-written"))
    await marked_gen.aclose()  # ended without commit

    plain_gen, unmarked = await _session("GET", plain)
    await unmarked.execute(insert(Tier).values(name="autocommitted"))
    await plain_gen.aclose()

    async with get_sessionmaker()() as check:
        names = set((await check.scalars(select(Tier.name))).all())
    assert names == {"autocommitted"}
