"""Login throttling: per account, per IP and per known device, escalating, failing closed."""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage

from src.infrastructure.ratelimit import RateLimiter
from src.modules.auth.schemas import normalise_identifier
from src.modules.auth.throttle import Attempt, LoginThrottle, account_key
from src.modules.common.exceptions import (
    NotAuthenticatedError,
    RateLimitedError,
    ServiceUnavailableError,
)

IP = "203.0.113.5"
OTHER_IP = "198.51.100.1"


@pytest.fixture
def limiter(mocker):
    limiter = RateLimiter(MemoryStorage())
    mocker.patch("src.modules.auth.throttle.get_rate_limiter", return_value=limiter)
    return limiter


def _attempt(account: str, ip: str = IP, device: str | None = None) -> Attempt:
    return Attempt(account=account_key(user_id=None, identifier=account), ip=ip, device=device)


async def _fail(throttle: LoginThrottle, times: int, attempt: Attempt) -> None:
    for _ in range(times):
        await throttle.check(attempt)
        await throttle.record_failure(attempt)


@pytest.mark.unit
async def test_an_account_is_throttled_after_its_failures(limiter):
    throttle = LoginThrottle(account_limits="3/minute", ip_limits="100/minute")
    await _fail(throttle, 3, _attempt("alice"))

    with pytest.raises(RateLimitedError) as error:
        await throttle.check(_attempt("alice", OTHER_IP))  # from any IP
    assert 1 <= error.value.retry_after <= 60
    await throttle.check(_attempt("bob"))  # other accounts are not affected


@pytest.mark.unit
async def test_an_ip_is_throttled_across_accounts(limiter):
    throttle = LoginThrottle(account_limits="100/minute", ip_limits="3/minute")
    for name in ("a", "b", "c"):
        await _fail(throttle, 1, _attempt(name))

    with pytest.raises(RateLimitedError):
        await throttle.check(_attempt("d"))
    await throttle.check(_attempt("d", OTHER_IP))


@pytest.mark.unit
async def test_the_wait_escalates_with_the_layered_limits(limiter):
    throttle = LoginThrottle(account_limits="2/minute;3/hour", ip_limits="100/minute")
    alice = _attempt("alice")
    await _fail(throttle, 2, alice)
    with pytest.raises(RateLimitedError) as short:
        await throttle.check(alice)
    assert short.value.retry_after <= 60
    # The minute has passed (simulated by forgetting its counter): one more try is allowed,
    # and its failure exhausts the hourly limit, so now the wait is up to an hour.
    await limiter.clear(throttle.account_limits[0], "login-account", alice.account)
    await _fail(throttle, 1, alice)
    await limiter.clear(throttle.account_limits[0], "login-account", alice.account)
    with pytest.raises(RateLimitedError) as long:
        await throttle.check(alice)
    assert 1 <= long.value.retry_after <= 3600


@pytest.mark.unit
async def test_success_clears_the_account_but_not_the_ip(limiter):
    throttle = LoginThrottle(account_limits="2/minute", ip_limits="3/minute")
    await _fail(throttle, 2, _attempt("alice"))
    await throttle.record_success(_attempt("alice"))
    await throttle.check(_attempt("alice", OTHER_IP))
    await _fail(throttle, 1, _attempt("bob"))
    with pytest.raises(RateLimitedError):
        await throttle.check(_attempt("alice"))  # the IP has 3 failures


@pytest.mark.unit
async def test_a_known_device_is_not_locked_out_by_strangers(limiter):
    throttle = LoginThrottle(
        account_limits="3/minute", ip_limits="3/minute", device_limits="2/minute"
    )
    await _fail(throttle, 3, _attempt("alice"))
    with pytest.raises(RateLimitedError):
        await throttle.check(_attempt("alice"))

    owner = _attempt("alice", device="nonce-1")
    await throttle.check(owner)  # the same IP and account, but a browser known to the account
    # Its own failures are limited per device, and do not spill onto other devices.
    await _fail(throttle, 2, owner)
    with pytest.raises(RateLimitedError):
        await throttle.check(owner)
    await throttle.check(_attempt("alice", device="nonce-2"))


@pytest.mark.unit
async def test_accounts_are_keyed_by_user_id_or_digest_never_by_email(limiter):
    throttle = LoginThrottle(account_limits="1/minute", ip_limits="100/minute")
    await _fail(throttle, 1, _attempt("alice@example.com"))
    keys = list(limiter.storage.storage)  # type: ignore[attr-defined]
    assert keys
    assert not any("alice" in key for key in keys)
    # A username and an email of the same user are one account.
    assert account_key(user_id=7, identifier="alice") == account_key(
        user_id=7, identifier="alice@example.com"
    )


@pytest.mark.unit
async def test_a_storage_outage_fails_closed(mocker):
    class Down(MemoryStorage):
        async def get(self, *args, **kwargs):
            raise ConnectionError("refused")

        async def incr(self, *args, **kwargs):
            raise ConnectionError("refused")

        async def get_sliding_window(self, *args, **kwargs):
            raise ConnectionError("refused")

        async def clear(self, *args, **kwargs):
            raise ConnectionError("refused")

    mocker.patch("src.modules.auth.throttle.get_rate_limiter", return_value=RateLimiter(Down()))
    throttle = LoginThrottle()
    for call in (throttle.check, throttle.record_failure, throttle.record_success):
        with pytest.raises(ServiceUnavailableError) as error:
            await call(_attempt("alice"))
        assert error.value.retry_after >= 1


@pytest.mark.unit
def test_identifiers_are_normalised_like_the_login_lookup():
    assert normalise_identifier("  Alice@Example.COM ") == "alice@example.com"


@pytest.mark.unit
async def test_guard_runs_a_proof_under_the_throttle(limiter):
    throttle = LoginThrottle(account_limits="2/minute", ip_limits="100/minute")
    attempt = _attempt("alice")
    proofs: list[bool] = []

    async def wrong() -> bool:
        proofs.append(False)
        return False

    async def right() -> bool:
        proofs.append(True)
        return True

    await throttle.guard(attempt, right, NotAuthenticatedError())
    for _ in range(2):
        with pytest.raises(NotAuthenticatedError):
            await throttle.guard(attempt, wrong, NotAuthenticatedError())
    with pytest.raises(RateLimitedError):
        await throttle.guard(attempt, right, NotAuthenticatedError())

    assert proofs == [True, False, False]  # a throttled proof is never run


@pytest.mark.unit
def test_an_attempt_on_a_known_account_uses_the_device_only_when_it_is_this_accounts():
    from src.infrastructure.auth.tokens import new_device_token, read_device_token
    from src.modules.auth.throttle import attempt_for_account

    mine = new_device_token(7)
    nonce = read_device_token(mine)[1]

    assert attempt_for_account(user_id=7, ip="1.2.3.4", device_token=mine).device == nonce
    assert attempt_for_account(user_id=8, ip="1.2.3.4", device_token=mine).device is None
    assert attempt_for_account(user_id=7, ip=None, device_token="forged.x.y").device is None
    assert attempt_for_account(user_id=7, ip=None, device_token=None) == Attempt(
        account=account_key(user_id=7, identifier="anything"), ip="", device=None
    )
