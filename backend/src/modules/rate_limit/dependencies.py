"""The rate-limit dependencies: `enforce_rate_limit` for every API route, `throttle_logins`
for the login route.

`enforce_rate_limit` is declared on the `/api/v1` router, so it runs before each route's own
dependencies and before the endpoint (and so before any `@cache`d endpoint can answer from the
cache). It resolves the caller once per request (`resolve_session`, which the route's
`CurrentUser` then reuses), picks the limit (`service.select_limit`), counts the request
atomically, and either leaves `X-RateLimit-Limit/Remaining/Reset` in the request scope (the
edge middleware adds them to whatever response the request gets, a cached one included) or
raises a 429 with `Retry-After` and the same headers. `RATE_LIMIT_ENABLED=false` turns both off.
"""

# No `from __future__ import annotations` here: `throttle_logins` builds a dependency whose
# annotation refers to a closure variable, which FastAPI must see evaluated.

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.infrastructure.observability.metrics import RATE_LIMIT_REJECTIONS
from src.infrastructure.ratelimit import (
    RATE_LIMIT_HEADERS_KEY,
    get_rate_limiter,
    ip_bucket,
    parse_limit,
    route_template,
)
from src.modules.auth.permissions import resolve_session
from src.modules.common.exceptions import NotAuthenticatedError, RateLimitedError
from src.modules.rate_limit.login_throttle import login_throttle, normalise_account
from src.modules.rate_limit.service import (
    RateLimitExceededError,
    default_limit,
    rate_limit_rules,
    select_limit,
)


def _refuse_malformed_defaults() -> None:
    """A malformed default is a deployment error: refuse to start (this module is imported
    with the app) rather than fail every request."""
    for name in ("RATE_LIMIT_DEFAULT", "RATE_LIMIT_ANONYMOUS"):
        try:
            parse_limit(getattr(settings, name))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None


_refuse_malformed_defaults()


async def enforce_rate_limit(request: Request, db: DBSession) -> None:
    if not settings.RATE_LIMIT_ENABLED:
        return
    context = await resolve_session(request, db)
    if context is None:
        item, budget = default_limit(authenticated=False), "*"
        caller = "ip:" + ip_bucket(client_ip(request))
    else:
        user = context.user
        tier_id = user.get("tier_id")
        rules = await rate_limit_rules.get(db) if tier_id is not None else {}
        item, budget = select_limit(
            rules,
            tier_id=tier_id,
            path=route_template(request),
            default=default_limit(authenticated=True),
        )
        caller = f"user:{user['id']}"
    status = await get_rate_limiter().hit(item, budget, caller)
    if status is None:  # the storage is down: fail open (logged by the limiter)
        return
    if not status.allowed:
        RATE_LIMIT_REJECTIONS.labels(route_template(request)).inc()
        raise RateLimitExceededError(retry_after=status.retry_after, headers=status.headers())
    request.scope[RATE_LIMIT_HEADERS_KEY] = status.raw_headers()


class _Credentials(Protocol):
    username: str


def throttle_logins(
    credentials: Callable[..., Awaitable[_Credentials]],
) -> Callable[..., AsyncIterator[None]]:
    """A dependency for the login route: 429 while the account or the client IP has failed
    too often; counts each failure (`NotAuthenticatedError` from the route) and clears the
    account's count on success. `credentials` is the route's own dependency that reads the
    submitted username, so the body is parsed once.

    Declare it with `Depends(throttle_logins(login_credentials), scope="function")` so the
    failure is counted before the response is sent.
    """

    async def dependency(
        request: Request, submitted: Annotated[Any, Depends(credentials)]
    ) -> AsyncIterator[None]:
        if not settings.RATE_LIMIT_ENABLED:
            yield
            return
        account = normalise_account(str(getattr(submitted, "username", "") or ""))
        ip = client_ip(request)
        try:
            await login_throttle.check(account=account, ip=ip)
        except RateLimitedError:
            RATE_LIMIT_REJECTIONS.labels(route_template(request)).inc()
            raise
        try:
            yield
        except NotAuthenticatedError:
            await login_throttle.record_failure(account=account, ip=ip)
            raise
        await login_throttle.record_success(account=account)

    return dependency
