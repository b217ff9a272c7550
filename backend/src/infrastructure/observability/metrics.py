"""The app's Prometheus series, in one place.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR (an empty directory shared by the
workers) and `/metrics` aggregates them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections_total", "Requests refused with 429, by route template", ["route"]
)
TASKS = Counter(
    "tasks_total",
    "Background tasks by name and outcome (enqueued, succeeded, failed)",
    ["task", "outcome"],
)


class PoolCollector(Collector):
    """Database pool usage, read when scraped (no bookkeeping on the request path)."""

    def __init__(self, pool_status: Callable[[], dict[str, int] | None]) -> None:
        self.pool_status = pool_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.pool_status()
        if not status:
            return
        for name, value in status.items():
            yield GaugeMetricFamily(f"db_pool_{name}", f"Database pool: {name}", value=value)


def register_pool_collector(pool_status: Callable[[], dict[str, int] | None]) -> None:
    with contextlib.suppress(ValueError):  # already registered by an earlier app instance
        REGISTRY.register(PoolCollector(pool_status))


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
