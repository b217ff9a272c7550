"""Atomic rate-limit counters in process memory or Redis, through the `limits` library.

Strategy: the sliding window counter (`limits.aio.strategies.SlidingWindowCounterRateLimiter`).

- Against a fixed window it removes the boundary burst: a fixed "100/minute" window lets a
  client send 100 requests at 00:59 and 100 more at 01:00; the sliding counter weights the
  previous window by how much of it still overlaps the last period, so it does not.
- Against the moving window (one timestamp per request, exact) it costs O(1) per key (two
  counters instead of a list as long as the limit) and one short Lua script per hit in Redis,
  whatever the limit; the price is an approximation that assumes the previous window's hits
  were spread evenly.
- In Redis, every check-and-increment is one Lua script, so concurrent workers and hosts never
  over-admit; windows are timed by Redis TTLs, so the app servers' clocks do not matter.

Storages: `memory` counts in this process only (the embedded profile, one worker; its expiry
sweep walks every key, so it is not meant for a public server with many clients); `redis`
(`REDIS_URL`) is shared by every worker and host.

Local allowance (Redis only; `RATE_LIMIT_SYNC_INTERVAL_SECONDS`, 0 turns it off): a Redis round
trip on every request costs more CPU than the rest of a cached read, so each process admits
most hits from a local allowance and settles them with Redis in batches. Per counter it keeps
the count Redis last reported plus the hits it admitted since; a hit is admitted locally, with
no round trip, while that snapshot is younger than the sync interval, fewer than `limit // 50`
hits wait to be sent, and the budget would keep at least a tenth of the limit in reserve.
Otherwise the hit goes to Redis with the waiting ones (`hit(cost=n)`) and the snapshot is
renewed. Hand-written because `limits` has no batching; the counting itself stays `limits`'.
Accuracy, stated: limits below 100 per window are counted exactly on every hit, and so is
the last 10% of a budget as this process last saw it. Above that, each process holds back at
most 2% of the limit (4% while a sync is in flight: the held-back hits travel, new ones keep
being admitted), so N processes can admit at most N x 4% over a limit in one window
(measured: 204 admitted for 200/minute with two processes and uneven traffic). Undercounts,
also bounded by 2% of the limit per process: hits held back by a process that stops, or whose
counter goes quiet until the window ends; and a batch that no longer fits because the window
filled up meanwhile (those hits were served; the window is full either way). Least recently
synced counters beyond 10,000 are forgotten. The headers (`X-RateLimit-Remaining`) come from
the snapshot.

Storage failures fail open: a request is served (and a warning logged, at most once a minute)
when Redis does not answer, because an outage of the limiter must not become an outage of the
API. `/health/ready` is the place that reports a Redis that is down. Callers that guard a
secret (login throttling) pass `strict=True` instead: counted exactly, and a storage failure
raises `LimiterUnavailableError`, so they can fail closed.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from src.infrastructure.config import settings

logger = logging.getLogger("src.ratelimit")

KEY_PREFIX = "ratelimit"
# Where a request's `X-RateLimit-*` headers wait (raw) for the edge middleware to send them.
RATE_LIMIT_HEADERS_KEY = "ratelimit.headers"
# A Redis that does not answer within this time counts as down (the request is then served).
REDIS_TIMEOUT_SECONDS = 1.0
_WARN_EVERY_SECONDS = 60.0


class LimiterUnavailableError(Exception):
    """The counters' storage did not answer a `strict=True` call."""


@lru_cache(maxsize=64)
def parse_limits(value: str) -> tuple[RateLimitItem, ...]:
    """Limits in `limits` notation: "100/minute", "10 per 5 seconds", "5/minute;20/hour".

    Raises ValueError naming the value when it does not parse or a limit allows nothing.
    """
    try:
        items = tuple(parse_many(value))
    except ValueError:
        raise ValueError(
            f"invalid rate limit {value!r}: expected e.g. '100/minute' or '5/minute;20/hour'"
        ) from None
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"invalid rate limit {value!r}: every limit must allow 1 or more")
    return items


def parse_limit(value: str) -> RateLimitItem:
    """Exactly one limit in `limits` notation ("100/minute"); ValueError otherwise."""
    items = parse_limits(value)
    if len(items) != 1:
        raise ValueError(f"invalid rate limit {value!r}: give exactly one limit")
    return items[0]


def limit_per_period(amount: int, period_seconds: int) -> RateLimitItem:
    """`amount` requests per `period_seconds` seconds."""
    return RateLimitItemPerSecond(amount, period_seconds)


@lru_cache(maxsize=4096)
def ip_bucket(address: str) -> str:
    """The key for a client address: IPv4 as is, IPv6 by its /64 network.

    One IPv6 subscriber usually holds a whole /64, so keying by single addresses would let a
    client rotate through billions of keys. Remembered for the last 4,096 addresses: parsing
    one was 1.5% of an anonymous read.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """The outcome of one check: allowed or not, and the numbers for the response headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # Unix time at which at least one more request is allowed

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait (at least 1), for `Retry-After`."""
        return max(1, math.ceil(self.reset_at - time.time()))

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as raw ASGI header pairs."""
        return [(name.lower().encode(), value.encode()) for name, value in self.headers().items()]

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds, as GitHub sends it)."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


BATCH_FRACTION = 50  # a process holds back at most limit // 50 hits (2%) before syncing
RESERVE_FRACTION = 10  # the last limit // 10 (10%) of a budget is always counted exactly
MAX_LOCAL_COUNTERS = 10_000  # least recently used counters beyond this are forgotten


@dataclass(slots=True)
class _Allowance:
    """What this process knows of one counter: Redis' count at `synced_at`, plus `pending`
    hits admitted here since and not yet sent."""

    count: float
    reset_at: float
    synced_at: float
    pending: int = 0


class RateLimiter:
    """Counters keyed by (limit, identifiers...) on one storage."""

    def __init__(self, storage: Storage, *, sync_interval: float = 0.0) -> None:
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self.sync_interval = sync_interval
        self._allowances: OrderedDict[str, _Allowance] = OrderedDict()
        self._last_warning = 0.0

    async def hit(
        self, item: RateLimitItem, *identifiers: str, strict: bool = False
    ) -> LimitStatus | None:
        """Count one request against `item`; None when the storage is down (fail open), or
        `LimiterUnavailableError` with `strict` (which also counts exactly, never locally)."""
        batch = item.amount // BATCH_FRACTION
        if strict or self.sync_interval <= 0 or batch < 2:
            return await self._hit_exactly(item, identifiers, strict=strict)
        key = item.key_for(*identifiers)
        local = self._allowances.get(key)
        now = time.monotonic()
        if (
            local is not None
            and now - local.synced_at < self.sync_interval
            and local.pending < batch
            and local.count + local.pending + 1 <= item.amount - item.amount // RESERVE_FRACTION
        ):
            local.pending += 1
            remaining = int(item.amount - local.count - local.pending)
            return LimitStatus(True, item.amount, remaining, local.reset_at)
        return await self._sync(item, identifiers, key, local, now)

    async def _sync(
        self,
        item: RateLimitItem,
        identifiers: tuple[str, ...],
        key: str,
        local: _Allowance | None,
        now: float,
    ) -> LimitStatus | None:
        """Send this hit with the ones held back, and renew the snapshot."""
        pending = 0
        if local is not None:
            # Taken before the await: hits admitted meanwhile are sent by the next sync, and
            # they keep being admitted from this snapshot while this round trip is in flight.
            pending, local.pending, local.synced_at = local.pending, 0, now
        try:
            allowed = await self.strategy.hit(item, *identifiers, cost=pending + 1)
            if not allowed and pending:
                # The held-back hits no longer fit; they were served already. Count this one.
                allowed = await self.strategy.hit(item, *identifiers)
            stats = await self.strategy.get_window_stats(item, *identifiers)
        except Exception as error:
            if local is not None:  # kept for the next sync, tried again after an interval
                local.pending += pending
            self._warn(error)
            return None
        count = float(item.amount - stats.remaining)
        # Read again after the await: a concurrent first hit may have created this counter,
        # or other counters may have evicted it meanwhile.
        current = self._allowances.get(key)
        if current is None:
            current = local or _Allowance(count, stats.reset_time, now)
            self._allowances[key] = current
            if len(self._allowances) > MAX_LOCAL_COUNTERS:
                self._allowances.popitem(last=False)
        else:
            self._allowances.move_to_end(key)
        local = current
        local.count, local.reset_at = count, stats.reset_time
        remaining = int(item.amount - count - local.pending)
        return LimitStatus(allowed, item.amount, remaining, stats.reset_time)

    async def _hit_exactly(
        self, item: RateLimitItem, identifiers: tuple[str, ...], *, strict: bool = False
    ) -> LimitStatus | None:
        try:
            allowed = await self.strategy.hit(item, *identifiers)
            stats = await self.strategy.get_window_stats(item, *identifiers)
        except Exception as error:  # any storage failure: serve the request, say so in the log
            self._fail(error, strict)
            return None
        return LimitStatus(allowed, item.amount, stats.remaining, stats.reset_time)

    async def wait_time(
        self, item: RateLimitItem, *identifiers: str, strict: bool = False
    ) -> float:
        """Seconds until one more hit on `item` would be allowed, without counting one: 0.0
        when it would be allowed now (or when the storage is down and not `strict`)."""
        try:
            if await self.strategy.test(item, *identifiers):
                return 0.0
            stats = await self.strategy.get_window_stats(item, *identifiers)
        except Exception as error:
            self._fail(error, strict)
            return 0.0
        return max(stats.reset_time - time.time(), 0.001)

    async def clear(self, item: RateLimitItem, *identifiers: str, strict: bool = False) -> None:
        self._allowances.pop(item.key_for(*identifiers), None)
        try:
            await self.strategy.clear(item, *identifiers)
        except Exception as error:
            self._fail(error, strict)

    def _fail(self, error: Exception, strict: bool) -> None:
        if strict:
            raise LimiterUnavailableError(f"{type(error).__name__}: {error}") from error
        self._warn(error)

    async def reset(self) -> None:
        """Forget every counter of this limiter (tests, operators)."""
        self._allowances.clear()
        await self.storage.reset()

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            logger.warning(
                "rate-limit storage unavailable, serving requests unlimited: %s: %s",
                type(error).__name__,
                error,
            )


def is_limiter_redis_url(url: str) -> bool:
    """Whether the limiter's Redis storage takes `url` (a redis:// or rediss:// family URL)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.startswith(("redis", "rediss"))


def build_storage(kind: str, redis_url: str | None) -> Storage:
    """Memory (this process) or Redis at `redis_url` (shared by every worker and host)."""
    if kind == "memory":
        return MemoryStorage()
    if kind == "redis":
        if not redis_url:
            raise ValueError("RATE_LIMIT_STORAGE=redis needs REDIS_URL")
        if not is_limiter_redis_url(redis_url):
            raise ValueError("REDIS_URL must be a redis:// or rediss:// URL")
        scheme, _, rest = redis_url.partition("://")
        return RedisStorage(
            f"async+{scheme}://{rest}",
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
    raise ValueError(f"unknown rate-limit storage {kind!r}")


@lru_cache(maxsize=1)
def get_rate_limiter() -> RateLimiter:
    """The process's limiter, built on first use from `RATE_LIMIT_STORAGE` and `REDIS_URL`."""
    storage = build_storage(settings.RATE_LIMIT_STORAGE, settings.REDIS_URL)
    batched = settings.RATE_LIMIT_STORAGE == "redis"  # memory counters are local already
    interval = settings.RATE_LIMIT_SYNC_INTERVAL_SECONDS if batched else 0.0
    return RateLimiter(storage, sync_interval=interval)
