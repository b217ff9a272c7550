"""Login throttling: failed sign-ins per account and per client IP, escalating.

Each failed login counts against two sets of limits: the account (the username or email as
typed, normalised, and hashed before it becomes a storage key) and the client IP (from
`TRUSTED_PROXY_HOPS`, so a spoofed `X-Forwarded-For` gains nothing). The limits are layered,
which makes the wait escalate: the first few failures cost a short pause, persisting costs
minutes, then an hour. While any limit is exhausted, login answers 429 with `Retry-After`
before any password is checked (no argon2 work is spent on a throttled client).

A successful login clears the account's counters, never the IP's. Unknown accounts are
throttled exactly like real ones, so throttling reveals nothing about which accounts exist.

Trade-offs: anyone can lock an account out of password login for a while by failing on
purpose (that is what per-account throttling means; the account limits stop at one hour to
bound it). Two concurrent failures may both pass the check, so a limit can be overshot by the
number of requests in flight, which is harmless at these rates.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

from limits import RateLimitItem

from src.infrastructure.ratelimit import get_rate_limiter, ip_bucket, parse_limits
from src.modules.common.exceptions import RateLimitedError

# Failed logins allowed, per account and per client IP, in `limits` notation.
ACCOUNT_LIMITS: Final = "5/minute;20/hour"
IP_LIMITS: Final = "20/minute;100/hour;500/day"
THROTTLED = "Too many failed login attempts: try again later"


class LoginThrottle:
    def __init__(self, *, account_limits: str = ACCOUNT_LIMITS, ip_limits: str = IP_LIMITS):
        self.account_limits = parse_limits(account_limits)
        self.ip_limits = parse_limits(ip_limits)

    def _buckets(self, account: str, ip: str) -> list[tuple[RateLimitItem, tuple[str, str]]]:
        buckets = [(item, ("login-ip", ip_bucket(ip))) for item in self.ip_limits]
        if account:
            key = _account_key(account)
            buckets += [(item, ("login-account", key)) for item in self.account_limits]
        return buckets

    async def check(self, *, account: str, ip: str) -> None:
        """Raise `RateLimitedError` (429 + `Retry-After`) while the account or IP is throttled."""
        limiter = get_rate_limiter()
        wait = 0.0
        for item, identifiers in self._buckets(account, ip):
            wait = max(wait, await limiter.wait_time(item, *identifiers))
        if wait > 0:
            raise RateLimitedError(THROTTLED, retry_after=max(1, math.ceil(wait)))

    async def record_failure(self, *, account: str, ip: str) -> None:
        limiter = get_rate_limiter()
        for item, identifiers in self._buckets(account, ip):
            await limiter.hit(item, *identifiers)

    async def record_success(self, *, account: str) -> None:
        if not account:
            return
        limiter = get_rate_limiter()
        for item in self.account_limits:
            await limiter.clear(item, "login-account", _account_key(account))


def normalise_account(identifier: str) -> str:
    """The form the login itself looks accounts up by (usernames and emails are lower case)."""
    return identifier.strip().lower()


def _account_key(account: str) -> str:
    # Emails are personal data: the storage only ever sees a digest.
    return hashlib.sha256(account.encode()).hexdigest()[:32]


login_throttle = LoginThrottle()
