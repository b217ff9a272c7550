"""Pure ASGI middleware: request metrics and one access-log line per request.

Labels use the route template (`/api/v1/users/{username}`), never the raw path, so the number
of series stays bounded whatever clients send.
"""

from __future__ import annotations

import time

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.infrastructure.config import settings
from src.infrastructure.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS
from src.infrastructure.route_templates import route_template

logger = structlog.get_logger("src.access")
UNMATCHED = "unmatched"


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            elapsed = time.perf_counter() - start
            # Route templates, never raw paths: the number of series stays bounded.
            route = route_template(Request(scope)) if scope.get("route") else UNMATCHED
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            if settings.LOG_ACCESS:
                logger.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
