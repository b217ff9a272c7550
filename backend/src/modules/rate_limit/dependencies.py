"""The rate-limit dependency `enforce_rate_limit`, declared for every API route (the login
throttle is the auth slice's: `src.modules.auth.throttle`).

`enforce_rate_limit` is declared on the `/api/v1` router, so it runs before each route's own
dependencies and before the endpoint (and so before any `@cache`d endpoint can answer from the
cache). It resolves the caller once per request (`resolve_session`, which the route's
`CurrentUser` then reuses), picks the limit (`service.select_limit`), counts the request
atomically, and either leaves `X-RateLimit-Limit/Remaining/Reset` in the request scope (the
edge middleware adds them to whatever response the request gets, a cached one included) or
raises a 429 with `Retry-After` and the same headers. `RATE_LIMIT_ENABLED=false` turns both off.
"""

from __future__ import annotations

from fastapi import Request

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
from src.modules.auth.dependencies import resolve_session
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
        principal = context.principal
        tier_id = principal.tier_id
        rules = await rate_limit_rules.get(db) if tier_id is not None else {}
        item, budget = select_limit(
            rules,
            tier_id=tier_id,
            path=route_template(request),
            default=default_limit(authenticated=True),
        )
        caller = f"user:{principal.id}"
    status = await get_rate_limiter().hit(item, budget, caller)
    if status is None:  # the storage is down: fail open (logged by the limiter)
        return
    if not status.allowed:
        RATE_LIMIT_REJECTIONS.labels(route_template(request)).inc()
        raise RateLimitExceededError(retry_after=status.retry_after, headers=status.headers())
    request.scope[RATE_LIMIT_HEADERS_KEY] = status.raw_headers()
