"""`@cache` on the in-memory backend: keys, hits, TTL, invalidation, stampedes, no-op switch.

The Redis backend, failing open and HTTP wiring are in tests/integration/test_cache_*.py.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from src.infrastructure.cache import cache, invalidate, reset_cache_backend
from src.infrastructure.cache.keys import KeyBuilder
from src.infrastructure.cache.manager import get_cache_manager
from src.infrastructure.config import settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def memory_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "CACHE_ENABLED", True)
    monkeypatch.setattr(settings, "CACHE_BACKEND", "memory")


class Counter:
    """An async function that counts its calls and can be held at a gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.result: Any = "value"

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        call, result = self.calls, self.result  # "reads the database" when it starts
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0.01)  # give concurrent callers time to pile up
        if isinstance(result, Exception):
            raise result
        return {"result": result, "call": call, **kwargs}


def parameters(func: Any) -> Any:
    return inspect.signature(func).parameters


# --- keys ------------------------------------------------------------------------------------


def test_key_template_formats_arguments_attributes_and_items():
    class Page:
        page = 2

    def route(username: str, pagination: Page, user: dict[str, int]) -> None: ...

    builder = KeyBuilder("u:{username}:{pagination.page}:{user[id]}", parameters(route))

    assert builder.build({"username": "alice", "pagination": Page(), "user": {"id": 7}}) == (
        "u:alice:2:7"
    )


def test_key_values_are_quoted_so_they_cannot_collide_or_act_as_patterns():
    def route(a: str, b: str) -> None: ...

    builder = KeyBuilder("k:{a}:{b}", parameters(route))

    assert builder.build({"a": "x:y", "b": "z"}) != builder.build({"a": "x", "b": "y:z"})
    assert "*" not in builder.build({"a": "*", "b": "?"})


def test_callable_key_takes_the_arguments_it_names():
    def route(username: str, db: object) -> None: ...

    builder = KeyBuilder(lambda username: f"user:{username.lower()}", parameters(route))

    assert builder.build({"username": "Alice", "db": object()}) == "user:alice"


@pytest.mark.parametrize(
    "spec",
    ["user:{usernme}", "user:{}", "user:{0}", lambda nobody: nobody],
    ids=["typo", "positional", "index", "callable-typo"],
)
def test_key_naming_no_argument_fails_when_decorating(spec):
    with pytest.raises(ValueError, match="cache key"):

        @cache(spec)
        async def route(username: str) -> dict[str, str]:
            return {}


def test_decorator_refuses_misuse():
    with pytest.raises(TypeError, match="async"):
        cache("k")(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        cache("k", ttl=0)
    with pytest.raises(TypeError, match="list of tags"):
        cache("k", tags="tiers")


def test_fastapi_sees_the_original_signature():
    async def route(username: str, page: int = 1) -> dict[str, Any]:
        """Doc."""
        return {}

    wrapped = cache("user:{username}")(route)

    assert inspect.signature(wrapped) == inspect.signature(route)
    assert wrapped.__name__ == "route"
    assert wrapped.__doc__ == "Doc."
    assert inspect.iscoroutinefunction(wrapped)


# --- hits, misses, TTL ---------------------------------------------------------------------------


async def test_second_call_is_a_hit_with_the_json_form_of_the_value():
    counter = Counter()
    counter.result = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)

    @cache("k:{name}")
    async def cached(name: str) -> Any:
        return await counter(name=name)

    first = await cached(name="a")
    second = await cached(name="a")
    other = await cached(name="b")

    assert counter.calls == 2  # "a" once, "b" once
    assert first["result"] == counter.result
    assert second == {"result": "2024-05-01T12:30:00Z", "call": 1, "name": "a"}
    assert other["name"] == "b"


async def test_one_entry_however_the_arguments_are_passed():
    counter = Counter()

    @cache("k:{name}:{page}")
    async def cached(name: str, page: int = 1) -> Any:
        return await counter(name=name, page=page)

    keywords = await cached(name="a", page=1)  # as FastAPI calls an endpoint
    positional = await cached("a", 1)
    defaulted = await cached(name="a")
    mixed = await cached("a", page=1)
    other_page = await cached(name="a", page=2)

    assert counter.calls == 2
    assert keywords == positional == defaulted == mixed
    assert other_page["page"] == 2


async def test_a_function_taking_extra_keywords_is_keyed_by_its_bound_arguments():
    counter = Counter()

    @cache(lambda name, extra: f"k:{name}:{sorted(extra.items())}")
    async def cached(name: str, **extra: Any) -> Any:
        return await counter(name=name, **extra)

    await cached(name="a", colour="red")
    await cached("a", colour="red")
    await cached(name="a", colour="blue")

    assert counter.calls == 2


async def test_entries_expire_after_their_ttl():
    counter = Counter()

    @cache("k", ttl=0.05)
    async def cached() -> Any:
        return await counter()

    await cached()
    await cached()
    await asyncio.sleep(0.1)
    await cached()

    assert counter.calls == 2


async def test_a_hit_is_a_fresh_copy_callers_cannot_corrupt_the_entry():
    counter = Counter()

    @cache("k")
    async def cached() -> Any:
        return await counter()

    await cached()

    (await cached())["result"] = "tampered"

    assert (await cached())["result"] == "value"


async def test_disabled_cache_is_a_plain_call(monkeypatch):
    monkeypatch.setattr(settings, "CACHE_ENABLED", False)
    counter = Counter()

    @cache("k")
    async def cached() -> Any:
        return await counter()

    for _ in range(3):
        assert (await cached())["result"] == "value"
    await invalidate("k")

    assert counter.calls == 3
    assert get_cache_manager().used is False  # no store was even built


async def test_exceptions_are_not_cached():
    counter = Counter()
    counter.result = LookupError("missing")

    @cache("k")
    async def cached() -> Any:
        return await counter()

    for _ in range(2):
        with pytest.raises(LookupError):
            await cached()

    assert counter.calls == 2


# --- invalidation ------------------------------------------------------------------------------


async def test_invalidating_the_key_drops_only_that_entry():
    counter = Counter()

    @cache("user:{name}")
    async def cached(name: str) -> Any:
        return await counter(name=name)

    await cached(name="a")
    await cached(name="b")

    await invalidate("user:a")
    await cached(name="a")
    await cached(name="b")

    assert counter.calls == 3


async def test_invalidating_a_tag_drops_every_entry_carrying_it():
    counter = Counter()
    single = Counter()

    @cache("list:{page}", tags=["lists"])
    async def cached(page: int) -> Any:
        return await counter(page=page)

    @cache("one", tags=["lists"])
    async def cached_single() -> Any:
        return await single()

    await asyncio.gather(cached(page=1), cached(page=2), cached_single())

    await invalidate("lists")
    await asyncio.gather(cached(page=1), cached(page=2), cached_single())

    assert (counter.calls, single.calls) == (4, 2)


async def test_a_value_computed_before_an_invalidation_is_never_served_after_it():
    # The classic race: a reader loads the old row, a write commits and invalidates, then the
    # reader stores what it loaded. Version stamps make that late store unreachable.
    counter = Counter()
    counter.gate = asyncio.Event()

    @cache("k")
    async def cached() -> Any:
        return await counter()

    slow_reader = asyncio.create_task(cached())
    await counter.started.wait()
    await invalidate("k")  # the write committed meanwhile
    counter.result = "new"
    counter.gate.set()
    assert (await slow_reader)["result"] == "value"  # its own caller gets what it loaded

    assert (await cached())["result"] == "new"
    assert counter.calls == 2


async def test_a_call_after_an_invalidation_does_not_join_a_computation_started_before():
    counter = Counter()
    counter.gate = asyncio.Event()

    @cache("k")
    async def cached() -> Any:
        return await counter()

    before = asyncio.create_task(cached())
    await counter.started.wait()

    await invalidate("k")
    counter.result = "new"
    after = asyncio.create_task(cached())
    await asyncio.sleep(0.01)
    counter.gate.set()

    assert (await before)["result"] == "value"
    assert (await after)["result"] == "new"


# --- stampedes --------------------------------------------------------------------------------


async def test_50_concurrent_misses_on_one_key_compute_once():
    counter = Counter()

    @cache("hot")
    async def cached() -> Any:
        return await counter()

    results = await asyncio.gather(*(cached() for _ in range(50)))

    assert counter.calls == 1
    assert all(result["result"] == "value" for result in results)


async def test_concurrent_misses_share_the_error_of_the_one_computation():
    counter = Counter()
    counter.result = LookupError("missing")

    @cache("hot")
    async def cached() -> Any:
        return await counter()

    results = await asyncio.gather(*(cached() for _ in range(10)), return_exceptions=True)

    assert counter.calls == 1
    assert all(isinstance(result, LookupError) for result in results)


async def test_when_the_computing_request_is_cancelled_a_waiting_one_takes_over():
    counter = Counter()
    counter.gate = asyncio.Event()

    @cache("hot")
    async def cached() -> Any:
        return await counter()

    leader = asyncio.create_task(cached())
    await counter.started.wait()
    follower = asyncio.create_task(cached())
    await asyncio.sleep(0.01)

    leader.cancel()  # its client went away
    await asyncio.sleep(0.01)
    counter.gate.set()

    assert (await follower)["result"] == "value"
    assert leader.cancelled()
    assert counter.calls == 2


async def test_reset_with_clear_empties_the_store():
    counter = Counter()

    @cache("k")
    async def cached() -> Any:
        return await counter()

    await cached()

    await reset_cache_backend(clear=True)
    await cached()

    assert counter.calls == 2
