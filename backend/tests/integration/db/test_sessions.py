"""The app's own sessions (not the test override): reads in autocommit, writes in a transaction."""

import asyncio
from contextlib import AsyncExitStack, suppress

import pytest
from sqlalchemy import exc, func, insert, select
from starlette.requests import Request

from src.infrastructure.database.session import (
    LazySession,
    async_session,
    get_sessionmaker,
    read_sessionmaker,
    writes_on_get,
)
from src.infrastructure.database.statements import BorrowingSession
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
    """The request's session as a route gets it, and the exit stack FastAPI unwinds when the
    endpoint returns (`aclose()`: the request's end)."""
    request = _request(method, endpoint)
    stack = AsyncExitStack()
    request.scope["fastapi_function_astack"] = stack  # what FastAPI's routing sets up
    return stack, await async_session(request)


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


@pytest.mark.integration
async def test_a_read_session_that_is_never_used_is_never_built(monkeypatch):
    """A cache hit or an early 404: the request's session costs nothing it did not use."""
    built: list[object] = []
    original = BorrowingSession.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(BorrowingSession, "__init__", counting)
    generator, reader = await _session("GET")
    assert isinstance(reader, LazySession)
    assert "src.db.borrowing" in reader.info  # set before any use, kept in the shell
    await generator.aclose()

    assert built == []
    assert not reader.opened


@pytest.mark.integration
async def test_a_read_session_is_built_at_its_first_use_with_what_was_set_before(clean_tables):
    generator, reader = await _session("GET")
    reader.info["mark"] = "kept"

    assert (await reader.execute(select(func.count()).select_from(Tier))).scalar_one() == 0

    assert reader.opened
    assert isinstance(reader.sync_session, BorrowingSession)
    assert reader.info["mark"] == "kept"
    assert reader.info["src.db.borrowing"] is True
    # Still an autocommit session: what it writes is there without a commit.
    await reader.execute(insert(Tier).values(name="autocommitted"))
    await generator.aclose()
    writer_gen, writer = await _session("POST")
    names = (await writer.execute(select(Tier.name))).scalars().all()
    await writer_gen.aclose()
    assert names == ["autocommitted"]


@pytest.mark.integration
async def test_an_unknown_attribute_of_a_read_session_is_an_attribute_error():
    generator, reader = await _session("GET")
    with pytest.raises(AttributeError):
        _ = reader.no_such_attribute
    assert reader.opened  # looking it up built the session, which has no such attribute either
    with pytest.raises(AttributeError):
        _ = reader.no_such_attribute
    await generator.aclose()


@pytest.mark.integration
async def test_an_unbuilt_read_session_answers_its_engine_and_no_transaction():
    generator, reader = await _session("GET")
    engine = reader.bind

    assert engine is not None
    assert engine.sync_engine.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
    assert not reader.in_transaction()
    assert not reader.opened  # neither question built it

    reader.bind = engine  # setting it builds the session and binds it
    assert reader.opened
    assert reader.bind is engine
    await generator.aclose()


@pytest.mark.integration
async def test_a_read_session_keeps_one_info_dict_and_the_makers_info(db_engine):
    maker = read_sessionmaker(db_engine)
    session = maker(info={"configured": 1})
    before = session.info

    assert before == {"configured": 1}  # what the maker was given, before the build
    await session.execute(select(1))
    assert session.opened
    before["late"] = 2  # a reference taken before the build still writes to the session
    assert session.info == {"configured": 1, "late": 2}
    assert session.sync_session.info is before
    await session.close()


@pytest.mark.integration
async def test_a_read_session_that_cannot_be_built_stays_a_shell(db_engine):
    shell = LazySession(db_engine.sync_engine)  # a sync engine: AsyncSession refuses it

    with pytest.raises(exc.ArgumentError):
        _ = shell.sync_session
    assert not shell.opened
    with pytest.raises(exc.ArgumentError):  # the same error again, not an AttributeError
        _ = shell.sync_session
    await shell.close()  # nothing to close


@pytest.mark.integration
async def test_outside_a_route_async_session_says_what_to_use():
    with pytest.raises(RuntimeError, match="request_session"):
        await async_session(_request("GET"))


@pytest.mark.integration
async def test_a_request_cancelled_while_closing_still_rolls_back_and_closes(clean_tables):
    """Cancelling the request in the middle of its session's close (a server shutting down)
    leaves nothing written and no transaction open."""
    stack, writer = await _session("POST")
    await writer.execute(insert(Tier).values(name="never-committed"))
    assert writer.in_transaction()

    closing = asyncio.create_task(stack.aclose())
    await asyncio.sleep(0)  # the close has started: the rollback is on its way
    assert not closing.done()
    closing.cancel()
    with suppress(asyncio.CancelledError):
        await closing

    assert not writer.in_transaction()
    async with get_sessionmaker()() as check:
        assert await check.scalar(select(func.count()).select_from(Tier)) == 0
