"""The limiter plumbing: parsing, keys, counting on the memory storage, failing open."""

from __future__ import annotations

import time

import pytest
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage

from src.infrastructure.ratelimit import (
    LimitStatus,
    RateLimiter,
    build_storage,
    ip_bucket,
    limit_per_period,
    parse_limit,
    parse_limits,
)


@pytest.mark.unit
def test_parse_limit_reads_limits_notation():
    item = parse_limit("100/minute")
    assert (item.amount, item.get_expiry()) == (100, 60)
    assert parse_limit("10 per 5 seconds").get_expiry() == 5


@pytest.mark.unit
@pytest.mark.parametrize("value", ["", "lots", "100/fortnight", "0/minute", "5/minute;20/hour"])
def test_parse_limit_refuses_bad_values(value):
    with pytest.raises(ValueError, match="invalid rate limit"):
        parse_limit(value)


@pytest.mark.unit
def test_parse_limits_reads_layered_limits():
    items = parse_limits("5/minute;20/hour")
    assert [(item.amount, item.get_expiry()) for item in items] == [(5, 60), (20, 3600)]


@pytest.mark.unit
def test_limit_per_period():
    item = limit_per_period(7, 90)
    assert (item.amount, item.get_expiry()) == (7, 90)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # same /64: same budget
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_ip_bucket_groups_ipv6_by_64_network(address, bucket):
    assert ip_bucket(address) == bucket


@pytest.mark.unit
def test_status_headers_and_retry_after():
    status = LimitStatus(allowed=False, limit=10, remaining=0, reset_at=time.time() + 41.2)
    assert status.headers()["X-RateLimit-Limit"] == "10"
    assert status.headers()["X-RateLimit-Remaining"] == "0"
    assert int(status.headers()["X-RateLimit-Reset"]) >= int(time.time()) + 41
    assert 41 <= status.retry_after <= 42
    assert LimitStatus(False, 1, 0, time.time() - 5).retry_after == 1  # never 0


@pytest.mark.unit
async def test_hit_counts_until_the_limit_then_refuses():
    limiter = RateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(3)
    statuses = [await limiter.hit(item, "route", "user:1") for _ in range(4)]
    assert [s.allowed for s in statuses if s] == [True, True, True, False]
    assert [s.remaining for s in statuses if s][:3] == [2, 1, 0]
    assert statuses[-1] is not None
    assert 1 <= statuses[-1].retry_after <= 60


@pytest.mark.unit
async def test_identifiers_are_separate_budgets_and_clear_resets_one():
    limiter = RateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(1)
    assert await limiter.hit(item, "a")
    first = await limiter.hit(item, "a")
    assert first is not None
    assert not first.allowed
    other = await limiter.hit(item, "b")
    assert other is not None
    assert other.allowed
    await limiter.clear(item, "a")
    again = await limiter.hit(item, "a")
    assert again is not None
    assert again.allowed


@pytest.mark.unit
async def test_wait_time_is_zero_until_exhausted():
    limiter = RateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(2)
    assert await limiter.wait_time(item, "k") == 0.0
    await limiter.hit(item, "k")
    await limiter.hit(item, "k")
    assert 0 < await limiter.wait_time(item, "k") <= 60


@pytest.mark.unit
async def test_reset_forgets_every_counter():
    limiter = RateLimiter(MemoryStorage())
    item = RateLimitItemPerMinute(1)
    await limiter.hit(item, "k")
    await limiter.reset()
    status = await limiter.hit(item, "k")
    assert status is not None
    assert status.allowed


class BrokenStorage(MemoryStorage):
    async def acquire_sliding_window_entry(self, *args, **kwargs):
        raise ConnectionError("redis is down")

    async def get_sliding_window(self, *args, **kwargs):
        raise ConnectionError("redis is down")

    async def clear_sliding_window(self, *args, **kwargs):
        raise ConnectionError("redis is down")


@pytest.mark.unit
async def test_a_storage_outage_fails_open_and_is_logged_once(caplog):
    limiter = RateLimiter(BrokenStorage())
    item = RateLimitItemPerMinute(1)
    with caplog.at_level("WARNING", logger="src.ratelimit"):
        assert await limiter.hit(item, "k") is None
        assert await limiter.hit(item, "k") is None
        assert await limiter.wait_time(item, "k") == 0.0
        await limiter.clear(item, "k")
    warnings = [r for r in caplog.records if "rate-limit storage unavailable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.unit
def test_build_storage():
    assert isinstance(build_storage("memory", None), MemoryStorage)
    with pytest.raises(ValueError, match="REDIS_URL"):
        build_storage("redis", None)
    with pytest.raises(ValueError, match="redis://"):
        build_storage("redis", "http://example.com")
    with pytest.raises(ValueError, match="unknown"):
        build_storage("memcached", None)
    redis = build_storage("redis", "redis://127.0.0.1:6399/3")
    assert type(redis).__name__ == "RedisStorage"
