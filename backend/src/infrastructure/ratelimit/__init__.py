"""Rate-limit plumbing: atomic counters in memory or Redis (`limits`), no business rules.

Which limit applies to whom (tiers, routes, login throttling) is decided in
`src.modules.rate_limit`.
"""

from src.infrastructure.ratelimit.limiter import (
    RATE_LIMIT_HEADERS_KEY,
    LimiterUnavailableError,
    LimitStatus,
    RateLimiter,
    build_storage,
    get_rate_limiter,
    ip_bucket,
    limit_per_period,
    parse_limit,
    parse_limits,
)
from src.infrastructure.route_templates import all_route_templates, route_template

__all__ = [
    "RATE_LIMIT_HEADERS_KEY",
    "LimitStatus",
    "LimiterUnavailableError",
    "RateLimiter",
    "all_route_templates",
    "build_storage",
    "get_rate_limiter",
    "ip_bucket",
    "limit_per_period",
    "parse_limit",
    "parse_limits",
    "route_template",
]
