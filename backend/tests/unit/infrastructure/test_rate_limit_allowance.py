"""The local allowance of `RateLimiter` (`RATE_LIMIT_SYNC_INTERVAL_SECONDS`): most hits are
admitted from a snapshot with no storage round trip and settled in batches, within the accuracy
the module docstring states (`src/infrastructure/ratelimit/limiter.py`):

- the first hit of a counter, and every hit once the snapshot is older than the interval, goes
  to the storage; in between, at most `limit // 50` hits wait before one sync sends them all;
- limits below 100 per window and the last tenth of any budget are counted on every hit;
- one process never admits more than the limit;
- a storage that fails is a served request (`None`), and `clear`/`reset` forget the snapshot.

The storage is `limits`' memory storage, counting its round trips, with its clock frozen in the
middle of a window (so no test straddles two windows), and the limiter's monotonic clock is the
test's to move.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.storage import memory as memory_storage_module

from src.infrastructure.ratelimit import limiter as limiter_module
from src.infrastructure.ratelimit.limiter import LimitStatus, RateLimiter

pytestmark = pytest.mark.unit

# 30 s into a minute (and into an hour): the sliding window's previous window is empty.
FROZEN_WALL_CLOCK = 1_800_000_030.0
INTERVAL = 10.0
CALLER = ("route", "user:1")


class CountingStorage(MemoryStorage):
    """The memory storage, counting the calls that would be Redis round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.acquired: list[int] = []  # the `amount` of each acquire_sliding_window_entry
        self.reads = 0  # get_sliding_window calls
        self.down = False

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if self.down:
            raise ConnectionError("storage is down")
        self.acquired.append(amount)
        return await super().acquire_sliding_window_entry(key, limit, expiry, amount)

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        if self.down:
            raise ConnectionError("storage is down")
        self.reads += 1
        return await super().get_sliding_window(key, expiry)

    @property
    def round_trips(self) -> int:
        return len(self.acquired) + self.reads

    async def count(self, item: RateLimitItem, *identifiers: str) -> int:
        """Hits the storage holds for the counter (not counted as a round trip)."""
        previous, _, current, _ = await super().get_sliding_window(
            item.key_for(*identifiers), item.get_expiry()
        )
        assert previous == 0  # the frozen clock keeps every test inside one window
        return current


class Clock:
    """The limiter module's `time`: a monotonic clock the test moves, the real wall clock."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def frozen_storage_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        memory_storage_module, "time", SimpleNamespace(time=lambda: FROZEN_WALL_CLOCK)
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(limiter_module, "time", fake)
    return fake


@pytest.fixture
def storage() -> CountingStorage:
    return CountingStorage()


@pytest.fixture
def limiter(storage: CountingStorage, clock: Clock) -> RateLimiter:
    return RateLimiter(storage, sync_interval=INTERVAL)


async def _hit(limiter: RateLimiter, item: RateLimitItem, *identifiers: str) -> LimitStatus:
    status = await limiter.hit(item, *(identifiers or CALLER))
    assert status is not None
    return status


async def test_first_hit_syncs_then_a_batch_is_admitted_locally_and_sent_in_one_trip(
    limiter, storage
):
    item = RateLimitItemPerMinute(1000)
    batch = 1000 // 50

    first = await _hit(limiter, item)
    assert first.allowed
    assert first.remaining == 999
    assert storage.acquired == [1]
    trips = storage.round_trips

    local = [await _hit(limiter, item) for _ in range(batch)]
    assert all(status.allowed for status in local)
    assert storage.round_trips == trips, "hits within the allowance must not reach the storage"
    # The headers still count every hit this process admitted.
    assert [s.remaining for s in local] == [1000 - n for n in range(2, batch + 2)]
    assert await storage.count(item, *CALLER) == 1  # the batch waits here

    settling = await _hit(limiter, item)
    assert settling.allowed
    assert storage.acquired == [1, batch + 1], "one trip sends the waiting hits with this one"
    hits_made = 1 + batch + 1
    assert await storage.count(item, *CALLER) == hits_made
    assert settling.remaining == 1000 - hits_made


async def test_each_counter_has_its_own_allowance(limiter, storage):
    item = RateLimitItemPerMinute(1000)
    await _hit(limiter, item, "route", "user:1")
    await _hit(limiter, item, "route", "user:1")
    assert storage.acquired == [1]
    await _hit(limiter, item, "route", "user:2")  # another caller: its first hit syncs
    assert storage.acquired == [1, 1]


@pytest.mark.parametrize("amount", [1, 10, 99])
async def test_limits_under_100_count_every_hit_in_the_storage(limiter, storage, amount):
    item = RateLimitItemPerMinute(amount)
    for n in range(1, amount + 3):
        status = await _hit(limiter, item)
        assert len(storage.acquired) == n, f"hit {n} of {amount}/minute was not sent"
        assert status.allowed == (n <= amount)
        assert await storage.count(item, *CALLER) == min(n, amount)


async def test_a_limit_of_100_is_batched(limiter, storage):
    item = RateLimitItemPerMinute(100)
    await _hit(limiter, item)
    await _hit(limiter, item)
    assert storage.acquired == [1]


async def test_a_zero_interval_turns_the_allowance_off(storage, clock):
    limiter = RateLimiter(storage, sync_interval=0)
    item = RateLimitItemPerMinute(1000)
    for _ in range(5):
        await _hit(limiter, item)
    assert storage.acquired == [1, 1, 1, 1, 1]


async def test_the_last_tenth_of_the_budget_is_counted_on_every_hit(limiter, storage):
    amount = 1000
    item = RateLimitItemPerMinute(amount)
    reserve_line = amount - amount // 10
    for n in range(1, amount + 1):
        sent_before = len(storage.acquired)
        status = await _hit(limiter, item)
        assert status.allowed
        if n > reserve_line:
            assert len(storage.acquired) == sent_before + 1, f"hit {n} was admitted locally"
            # Exact: the storage holds every hit admitted so far.
            assert await storage.count(item, *CALLER) == n
            assert status.remaining == amount - n
        if n > reserve_line + 1:
            assert storage.acquired[-1] == 1  # nothing was waiting any more
        if n == reserve_line:
            trips_below_the_line = len(storage.acquired)
    # Below the line, the allowance did its job: about one trip per limit // 50 hits.
    assert trips_below_the_line <= reserve_line // (amount // 50)


@pytest.mark.parametrize("amount", [100, 137, 1000, 5000])
async def test_one_process_never_admits_more_than_the_limit(limiter, storage, amount):
    item = RateLimitItemPerMinute(amount)
    statuses = [await _hit(limiter, item) for _ in range(amount + amount // 5)]
    admitted = sum(status.allowed for status in statuses)
    assert admitted == amount
    assert all(status.allowed for status in statuses[:amount])
    refused = statuses[amount:]
    assert not any(status.allowed for status in refused)
    assert {status.remaining for status in refused} == {0}
    assert await storage.count(item, *CALLER) == amount


async def test_a_snapshot_older_than_the_interval_syncs_on_the_next_hit(limiter, storage, clock):
    item = RateLimitItemPerMinute(1000)
    await _hit(limiter, item)
    clock.advance(INTERVAL - 0.01)
    await _hit(limiter, item)  # the snapshot is still fresh
    assert storage.acquired == [1]

    clock.advance(0.02)  # now older than the interval
    await _hit(limiter, item)
    assert storage.acquired == [1, 2]  # the waiting hit went with it
    assert await storage.count(item, *CALLER) == 3

    clock.advance(1)
    await _hit(limiter, item)  # a fresh snapshot again: local
    assert storage.acquired == [1, 2]

    clock.advance(3600)  # a counter that went quiet: its waiting hit is sent with the next one
    await _hit(limiter, item)
    assert storage.acquired == [1, 2, 2]
    assert await storage.count(item, *CALLER) == 5


async def test_a_storage_failure_fails_open(limiter, storage, clock):
    item = RateLimitItemPerMinute(1000)
    storage.down = True
    assert await limiter.hit(item, *CALLER) is None  # the very first hit

    storage.down = False
    await _hit(limiter, item)
    await _hit(limiter, item)  # admitted locally, waiting
    storage.down = True
    clock.advance(INTERVAL)
    assert await limiter.hit(item, *CALLER) is None  # a sync that fails: served, not raised

    storage.down = False
    clock.advance(INTERVAL)
    recovered = await _hit(limiter, item)
    assert recovered.allowed
    assert storage.acquired[-1] >= 1


async def test_clear_forgets_the_local_allowance(limiter, storage):
    item = RateLimitItemPerMinute(1000)
    for _ in range(5):
        await _hit(limiter, item)  # 1 synced, 4 waiting
    other = ("route", "user:2")
    await _hit(limiter, item, *other)
    await _hit(limiter, item, *other)

    await limiter.clear(item, *CALLER)
    assert await storage.count(item, *CALLER) == 0
    sent = len(storage.acquired)
    status = await _hit(limiter, item)
    assert storage.acquired[sent:] == [1], "after clear the next hit syncs, alone"
    assert status.remaining == 999
    assert await storage.count(item, *CALLER) == 1

    # The other counter kept its allowance.
    await _hit(limiter, item, *other)
    assert len(storage.acquired) == sent + 1


async def test_reset_forgets_every_local_allowance(limiter, storage):
    item = RateLimitItemPerMinute(1000)
    callers = [("route", f"user:{n}") for n in range(3)]
    for caller in callers:
        for _ in range(3):
            await _hit(limiter, item, *caller)

    await limiter.reset()
    for caller in callers:
        sent = len(storage.acquired)
        status = await _hit(limiter, item, *caller)
        assert storage.acquired[sent:] == [1]
        assert status.remaining == 999
        assert await storage.count(item, *caller) == 1


async def test_a_counter_evicted_while_its_sync_is_in_flight_is_kept(
    limiter, storage, clock, monkeypatch
):
    """Other counters may push this one out of the bounded map during its round trip; the
    sync then puts it back instead of failing the request."""
    import asyncio

    monkeypatch.setattr(limiter_module, "MAX_LOCAL_COUNTERS", 2)
    item = RateLimitItemPerMinute(1000)
    await _hit(limiter, item, "route", "a")
    await _hit(limiter, item, "route", "b")
    clock.advance(INTERVAL + 1)

    gate = asyncio.Event()
    real_acquire = storage.acquire_sliding_window_entry

    async def slow_acquire(key: str, *args: object, **kwargs: object) -> bool:
        if "/a/" in key:
            await gate.wait()
        return await real_acquire(key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "acquire_sliding_window_entry", slow_acquire)
    syncing = asyncio.create_task(limiter.hit(item, "route", "a"))
    await asyncio.sleep(0)
    await _hit(limiter, item, "route", "c")  # evicts "a" (least recently synced)
    await _hit(limiter, item, "route", "d")
    gate.set()
    status = await syncing
    assert status is not None
    assert status.allowed
    assert await storage.count(item, "route", "a") == 2
