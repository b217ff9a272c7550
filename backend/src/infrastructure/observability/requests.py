"""Per-request metrics and the access log line, recorded by the edge middleware.

Labels use the route template (`/api/v1/users/{username}`), never the raw path, so the number
of series stays bounded whatever clients send. Kept cheap because it runs on every request:
the labelled children of the counter and the histogram are looked up once per (method, route,
status) and reused, and the access logger is bound once.
"""

from __future__ import annotations

from typing import Any

from src.infrastructure.config import settings
from src.infrastructure.logging import setup as logging_setup
from src.infrastructure.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "unmatched"
# Any other method (clients may send anything) is counted as OTHER: bounded series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def record_request(method: str, route: str | None, path: str, status: int, seconds: float) -> None:
    """Count the request, observe its latency and write its access line (when `LOG_ACCESS`)."""
    route = route or UNMATCHED
    if method not in METHODS:
        method = "OTHER"
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
    children[0].inc()
    children[1].observe(seconds)
    if settings.LOG_ACCESS and logging_setup.access_log is not None:
        logging_setup.access_log.info(
            "request",
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
        )
