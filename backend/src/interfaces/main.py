"""The FastAPI application: `src.interfaces.main.app`.

Middleware (outermost first): the edge (request id, trailing slash, body limit, gzip, security
and rate-limit headers, CSRF cookie, metrics and access log: `src/interfaces/edge.py`), then
CORS when origins are configured. Both pure ASGI.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import src.modules.models  # noqa: F401 - registers every model on Base.metadata
from src.infrastructure.cache import reset_cache_backend
from src.infrastructure.config import Environment, settings
from src.infrastructure.database.session import dispose_engine, get_engine, pool_status
from src.infrastructure.logging.setup import configure_logging
from src.infrastructure.observability.metrics import register_pool_collector
from src.infrastructure.observability.otel import OFF, decide
from src.infrastructure.ratelimit.limiter import get_rate_limiter
from src.infrastructure.redis_client import close_redis_clients, persistence_warning
from src.infrastructure.route_index import install_route_index
from src.infrastructure.security.validator import validate_settings
from src.infrastructure.taskiq.brokers import (
    default_broker,
    runs_in_process,
    start_broker,
    stop_broker,
)
from src.infrastructure.taskiq.outbox import OutboxRelay
from src.interfaces.admin import mount_admin
from src.interfaces.api.v1 import include_api_v1
from src.interfaces.docs import add_docs
from src.interfaces.edge import EdgeMiddleware
from src.interfaces.errors import register_error_handlers, unhandled_error_handler
from src.interfaces.health import router as health_router
from src.interfaces.metrics import router as metrics_router
from src.interfaces.openapi import install_openapi


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Built now rather than by the first request, which would wait for them (the engine
    # imports its driver), and frozen with the rest of startup below; first, so a setting
    # they refuse stops the start before anything else has started. No network I/O: the
    # pool connects on demand, so a database that is down does not stop the app starting.
    get_engine()
    if settings.RATE_LIMIT_ENABLED:
        get_rate_limiter()
    telemetry_on, why = app.state.fastapi_telemetry
    logging.getLogger("src.startup").info(
        "FastAPI OpenTelemetry %s (%s)", "on" if telemetry_on else "off", why
    )
    if settings.METRICS_ENABLED and settings.METRICS_PORT:
        start_metrics_listener(settings.METRICS_PORT)
    await start_broker(default_broker)  # Redis/RabbitMQ: connect; in-memory: nothing to do
    # The outbox relay: the request's commit wakes it, so tasks leave within milliseconds
    # (the memory broker's tasks run nowhere else; `app worker` runs relays of its own).
    relay = None
    if settings.OUTBOX_RELAY_IN_API or runs_in_process(default_broker):
        relay = OutboxRelay(default_broker)
        relay.start()
    if settings.SESSION_BACKEND == "redis":
        warning = await persistence_warning()
        if warning:
            logging.getLogger("src.startup").warning(warning)
    with garbage_collector_for_serving(settings.GC_YOUNG_THRESHOLD):
        yield
    if relay is not None:
        await relay.stop()  # what it did not send stays in the table for the next relay
    await stop_broker(default_broker)  # in-memory: lets the tasks in flight finish first
    await reset_cache_backend()  # closes the cache's Redis pool
    await close_redis_clients()
    await dispose_engine()


@contextlib.contextmanager
def garbage_collector_for_serving(young_threshold: int) -> Iterator[None]:
    """The garbage collector tuned for serving requests, restored afterwards (an embedding
    process, a test, goes on with it as it was).

    What is alive at the end of startup (modules, the app, its routes, models and schemas:
    ~180k objects) lives as long as the process: frozen out of the collector's scans, a full
    collection pauses the event loop ~20-40 ms instead of ~120 ms.

    Requests free what they allocate by reference counting (a collection during a load of
    `/users/me` found nothing to collect), yet with Python's default threshold (700) the
    objects of the requests in flight set off a young collection every few requests, and the
    ones those collections promoted set off a full collection about once a second under load,
    each one a pause that was the p99 of every benchmark row. A higher young threshold
    (`GC_YOUNG_THRESHOLD`) leaves the requests' objects to reference counting; reference
    cycles (an exception and its traceback, say) are still collected once that many
    accumulate.

    Not reentrant: with two apps serving in one process, the last to stop restores what its
    own start found.
    """
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    try:
        if young_threshold:
            gc.set_threshold(young_threshold, *before[1:])
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def start_metrics_listener(port: int) -> None:
    """Serve /metrics on a port of its own; with several workers the first one to bind wins."""
    from prometheus_client import start_http_server

    with contextlib.suppress(OSError):
        start_http_server(port)


def create_app() -> FastAPI:
    validate_settings(settings)
    configure_logging()
    register_pool_collector(pool_status)
    docs = settings.docs_enabled
    # Decided once here: FastAPI would otherwise look for a provider on every request.
    telemetry_on, why = decide(settings.FASTAPI_TELEMETRY)
    app = FastAPI(
        title=settings.APP_NAME,
        version=settings.APP_VERSION,
        lifespan=lifespan,
        telemetry={} if telemetry_on else OFF.copy(),
        redirect_slashes=False,  # the edge middleware serves both forms, no 307
        docs_url=None,  # served by add_docs, CSRF-aware
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.fastapi_telemetry = (telemetry_on, why)
    register_error_handlers(app)
    if docs:
        add_docs(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    include_api_v1(app)
    if settings.ADMIN_ENABLED:
        mount_admin(app)  # /admin: sqladmin on the same users, sessions and CSRF
    install_openapi(app)  # every status each route can answer, with the error model
    install_route_index(app)  # the route FastAPI would pick, by lookup instead of a scan

    # add_middleware wraps: the last one added is the outermost. Everything a client can
    # receive (a 413 and CORS preflights included) passes the edge's cookie and header work.
    cors: dict[str, Any] | None = None
    if settings.CORS_ORIGINS:
        cors = {
            "allow_origins": settings.CORS_ORIGINS,
            "allow_credentials": settings.CORS_ALLOW_CREDENTIALS,
            "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "allow_headers": ["Content-Type", settings.CSRF_HEADER_NAME, "X-Request-ID"],
            "expose_headers": [
                "X-Request-ID",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        }
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.MAX_REQUEST_BODY_BYTES,
        max_concurrent=settings.max_concurrent_requests,
        queue_timeout=settings.REQUEST_QUEUE_TIMEOUT_SECONDS,
        hsts=settings.ENVIRONMENT not in (Environment.LOCAL, Environment.PYTEST),
        # The edge's own 413s and 503s carry CORS headers too, so browsers can read them.
        wrap_own_responses=(lambda inner: CORSMiddleware(inner, **cors)) if cors else None,
        on_error=unhandled_error_handler,
    )
    return app


app = create_app()
