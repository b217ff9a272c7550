"""Login throttling: failed sign-ins per account, per client IP and per known device,
escalating, and failing closed.

Policy (documented in docs/architecture.md, "Login defences"):

- A stranger's failure (a browser without a device cookie for this account) counts against the
  account and against the client IP. The account is the user the identifier names, so a
  username and an email fold to the same counters; an identifier that names nobody is counted
  under its digest, exactly like a real account, so throttling reveals nothing. Limits are
  layered, so the wait escalates (a short pause, then minutes, then an hour).
- A browser that signed in to this account before carries a signed device cookie
  (`DEVICE_COOKIE_NAME`, OWASP's device cookie). Its failures count against that device only,
  and the account and IP lockouts strangers trigger do not apply to it: an attacker cannot
  lock the owner out of their own browser. A stolen device cookie buys an attacker the same
  small per-device budget, no more.
- While any applicable limit is exhausted, login answers 429 with `Retry-After` before any
  password is checked (no argon2 work is spent on a throttled client).
- Fails closed: when the counters' storage does not answer, login answers 503 with
  `Retry-After` whatever the password, so an outage never opens unlimited guessing and a right
  password is indistinguishable from a wrong one.

The second factor of an MFA account counts the same way: a wrong code at
`POST /auth/mfa/verify` (and at the routes that re-prove a factor: disable MFA, new recovery
codes) is a failure of that account (`attempt_for_account`, `guard`), and a right password
alone is not a success (it clears nothing): only the right code is.

A success clears the counters of the credential that succeeded (the account's stranger
counters only for a stranger's success), never the IP's. Two concurrent failures may both pass
the check, so a limit can be overshot by the requests in flight: harmless at these rates.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from limits import RateLimitItem

from src.infrastructure.auth.tokens import read_device_token
from src.infrastructure.config import settings
from src.infrastructure.observability.metrics import RATE_LIMIT_REJECTIONS
from src.infrastructure.ratelimit import (
    LimiterUnavailableError,
    get_rate_limiter,
    ip_bucket,
    parse_limits,
)
from src.modules.common.exceptions import (
    DomainError,
    RateLimitedError,
    ServiceUnavailableError,
)

logger = logging.getLogger("src.auth.throttle")

# Failed logins allowed, in `limits` notation.
ACCOUNT_LIMITS: Final = "5/minute;20/hour"
IP_LIMITS: Final = "20/minute;100/hour;500/day"
DEVICE_LIMITS: Final = "5/minute;20/hour"
THROTTLED = "Too many failed login attempts: try again later"
UNAVAILABLE = "Sign-in is temporarily unavailable, try again shortly"
RETRY_AFTER_UNAVAILABLE = 5
LOGIN_ROUTE = "/api/v1/auth/login"  # the rejections metric's label


@dataclass(frozen=True, slots=True)
class Attempt:
    """Whose counters a login attempt touches."""

    account: str  # "u<user id>" for an account, else a digest of the identifier
    ip: str
    device: str | None = None  # the device nonce, when the browser is known to this account


def account_key(*, user_id: int | None, identifier: str) -> str:
    """The throttle's name for an account: its user id, so username and email fold together;
    for an identifier that names nobody, a digest (storage never sees an email)."""
    if user_id is not None:
        return f"u{user_id}"
    return "i" + hashlib.sha256(identifier.encode()).hexdigest()[:32]


def attempt_for_account(*, user_id: int, ip: str | None, device_token: str | None) -> Attempt:
    """The attempt of a caller acting on a known account (a pending MFA sign-in, a signed-in
    user proving a factor again): the account's counters, or only this browser's when its
    device cookie is for this account."""
    device = read_device_token(device_token)
    return Attempt(
        account=account_key(user_id=user_id, identifier=""),
        ip=ip or "",
        device=device[1] if device is not None and device[0] == user_id else None,
    )


class LoginThrottle:
    def __init__(
        self,
        *,
        account_limits: str = ACCOUNT_LIMITS,
        ip_limits: str = IP_LIMITS,
        device_limits: str = DEVICE_LIMITS,
    ) -> None:
        self.account_limits = parse_limits(account_limits)
        self.ip_limits = parse_limits(ip_limits)
        self.device_limits = parse_limits(device_limits)

    @property
    def enabled(self) -> bool:
        return settings.RATE_LIMIT_ENABLED

    def _buckets(self, attempt: Attempt) -> list[tuple[RateLimitItem, tuple[str, str]]]:
        if attempt.device is not None:
            key = f"{attempt.account}:{attempt.device}"
            return [(item, ("login-device", key)) for item in self.device_limits]
        buckets = [(item, ("login-ip", ip_bucket(attempt.ip))) for item in self.ip_limits]
        return buckets + [
            (item, ("login-account", attempt.account)) for item in self.account_limits
        ]

    async def check(self, attempt: Attempt) -> None:
        """429 + `Retry-After` while throttled; 503 when the counters cannot be read."""
        limiter = get_rate_limiter()
        wait = 0.0
        try:
            for item, identifiers in self._buckets(attempt):
                wait = max(wait, await limiter.wait_time(item, *identifiers, strict=True))
        except LimiterUnavailableError as error:
            raise _unavailable(error) from None
        if wait > 0:
            RATE_LIMIT_REJECTIONS.labels(LOGIN_ROUTE).inc()
            raise RateLimitedError(THROTTLED, retry_after=max(1, math.ceil(wait)))

    async def record_failure(self, attempt: Attempt) -> None:
        limiter = get_rate_limiter()
        try:
            for item, identifiers in self._buckets(attempt):
                await limiter.hit(item, *identifiers, strict=True)
        except LimiterUnavailableError as error:
            raise _unavailable(error) from None

    async def record_success(self, attempt: Attempt) -> None:
        limiter = get_rate_limiter()
        buckets = [b for b in self._buckets(attempt) if b[1][0] != "login-ip"]
        try:
            for item, identifiers in buckets:
                await limiter.clear(item, *identifiers, strict=True)
        except LimiterUnavailableError as error:
            raise _unavailable(error) from None

    async def guard(
        self, attempt: Attempt, proof: Callable[[], Awaitable[bool]], error: DomainError
    ) -> None:
        """Run `proof` (a check of a code or password) under the throttle, as login does: 429
        while throttled, before the proof runs; a failed proof counts and raises `error`; a
        passed one clears the credential's counters. 503 when the counters cannot be used."""
        if not self.enabled:
            if not await proof():
                raise error
            return
        await self.check(attempt)
        if not await proof():
            await self.record_failure(attempt)
            raise error
        await self.record_success(attempt)


# Emails a "send me a link" route may trigger, per target address and per client IP.
EMAIL_ADDRESS_LIMITS: Final = "5/hour;20/day"
EMAIL_IP_LIMITS: Final = "20/hour;100/day"
EMAIL_THROTTLED = "Too many emails asked for: try again later"


class EmailRequestThrottle:
    """Bounds the emails the verify/reset request routes send (mail bombing, cost): per
    target address (counted whether or not an account has it, so a 429 tells nothing) and
    per client IP. Fails open: these limits guard a mailbox, not a secret."""

    def __init__(
        self, *, address_limits: str = EMAIL_ADDRESS_LIMITS, ip_limits: str = EMAIL_IP_LIMITS
    ) -> None:
        self.address_limits = parse_limits(address_limits)
        self.ip_limits = parse_limits(ip_limits)

    async def hit(self, *, kind: str, email: str, ip: str) -> None:
        if not settings.RATE_LIMIT_ENABLED:
            return
        limiter = get_rate_limiter()
        address = account_key(user_id=None, identifier=email)
        buckets = [(item, (f"{kind}-address", address)) for item in self.address_limits]
        buckets += [(item, (f"{kind}-ip", ip_bucket(ip))) for item in self.ip_limits]
        for item, identifiers in buckets:
            status = await limiter.hit(item, *identifiers)
            if status is not None and not status.allowed:
                RATE_LIMIT_REJECTIONS.labels(f"/api/v1/auth/{kind}").inc()
                raise RateLimitedError(EMAIL_THROTTLED, retry_after=status.retry_after)


def _unavailable(error: LimiterUnavailableError) -> ServiceUnavailableError:
    logger.warning("login throttle storage unavailable, refusing sign-ins: %s", error)
    return ServiceUnavailableError(UNAVAILABLE, retry_after=RETRY_AFTER_UNAVAILABLE)


login_throttle = LoginThrottle()
email_request_throttle = EmailRequestThrottle()
