"""Login throttling: per account and per IP, escalating, cleared per account on success."""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage

from src.infrastructure.ratelimit import RateLimiter
from src.modules.common.exceptions import RateLimitedError
from src.modules.rate_limit.login_throttle import LoginThrottle, normalise_account

IP = "203.0.113.5"


@pytest.fixture
def limiter(mocker):
    limiter = RateLimiter(MemoryStorage())
    mocker.patch("src.modules.rate_limit.login_throttle.get_rate_limiter", return_value=limiter)
    return limiter


async def _fail(throttle: LoginThrottle, times: int, *, account: str, ip: str = IP) -> None:
    for _ in range(times):
        await throttle.check(account=account, ip=ip)
        await throttle.record_failure(account=account, ip=ip)


@pytest.mark.unit
async def test_an_account_is_throttled_after_its_failures(limiter):
    throttle = LoginThrottle(account_limits="3/minute", ip_limits="100/minute")
    await _fail(throttle, 3, account="alice")

    with pytest.raises(RateLimitedError) as error:
        await throttle.check(account="alice", ip="198.51.100.1")  # from any IP
    assert 1 <= error.value.retry_after <= 60
    await throttle.check(account="bob", ip=IP)  # other accounts are not affected


@pytest.mark.unit
async def test_an_ip_is_throttled_across_accounts(limiter):
    throttle = LoginThrottle(account_limits="100/minute", ip_limits="3/minute")
    for name in ("a", "b", "c"):
        await _fail(throttle, 1, account=name)

    with pytest.raises(RateLimitedError):
        await throttle.check(account="d", ip=IP)
    await throttle.check(account="d", ip="198.51.100.1")


@pytest.mark.unit
async def test_the_wait_escalates_with_the_layered_limits(limiter):
    throttle = LoginThrottle(account_limits="2/minute;3/hour", ip_limits="100/minute")
    await _fail(throttle, 2, account="alice")
    with pytest.raises(RateLimitedError) as short:
        await throttle.check(account="alice", ip=IP)
    assert short.value.retry_after <= 60
    # The minute has passed (simulated by forgetting its counter): one more try is allowed,
    # and its failure exhausts the hourly limit, so now the wait is up to an hour.
    await limiter.clear(throttle.account_limits[0], "login-account", _key("alice"))
    await _fail(throttle, 1, account="alice")
    await limiter.clear(throttle.account_limits[0], "login-account", _key("alice"))
    with pytest.raises(RateLimitedError) as long:
        await throttle.check(account="alice", ip=IP)
    assert 1 <= long.value.retry_after <= 3600


@pytest.mark.unit
async def test_success_clears_the_account_but_not_the_ip(limiter):
    throttle = LoginThrottle(account_limits="2/minute", ip_limits="3/minute")
    await _fail(throttle, 2, account="alice")
    await throttle.record_success(account="alice")
    await throttle.check(account="alice", ip="198.51.100.1")
    await _fail(throttle, 1, account="bob")
    with pytest.raises(RateLimitedError):
        await throttle.check(account="alice", ip=IP)  # the IP has 3 failures


@pytest.mark.unit
async def test_accounts_are_keyed_by_digest_not_by_email(limiter):
    throttle = LoginThrottle(account_limits="1/minute", ip_limits="100/minute")
    await _fail(throttle, 1, account="alice@example.com")
    keys = list(limiter.storage.storage)  # type: ignore[attr-defined]
    assert keys
    assert not any("alice" in key for key in keys)


@pytest.mark.unit
def test_accounts_are_normalised_like_the_login_lookup():
    assert normalise_account("  Alice@Example.COM ") == "alice@example.com"


def _key(account: str) -> str:
    from src.modules.rate_limit.login_throttle import _account_key

    return _account_key(account)
