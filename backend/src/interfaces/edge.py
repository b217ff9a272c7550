"""The edge of the app: one pure ASGI middleware for what every HTTP request and response needs.

On the way in: a request id (the client's sane `X-Request-ID` or a new one, in the logging
context for the request's duration); the trailing slash stripped before routing (every API path
answers with and without it, with no redirect; mounted sub-apps such as `/admin` route
themselves); a declared body over `MAX_REQUEST_BODY_BYTES` refused with a JSON 413, and a body
of undeclared length counted as it arrives; gzip only for clients that accept it.

On the way out (`http.response.start`): `X-Request-ID`, the security headers and CSP, the
`X-RateLimit-*` headers the rate limiter left in the scope, and a `csrf_token` cookie when the
request had none (unless the route set a fresh one, as login and logout do).

Backpressure: at most `max_concurrent` requests run at once; the others wait their turn in
arrival order (a FIFO semaphore) before any work is done for them, and one that waited longer
than `queue_timeout` seconds is answered 503 with `Retry-After` without running. Under a flood
the requests inside the app get the CPU and release their database connection quickly, instead
of hundreds of half-started requests sharing the loop while the pool runs dry (measured at 256
connections: 10% 503s and timeouts without it). The liveness probe is never queued.

Afterwards: the request's metrics and its access log line, labelled by route template.

One class rather than one per concern because each ASGI layer costs a call and a `send`
wrapper on every request: the seven layers this replaces cost about a seventh of a cached read.
What each concern means lives with its plumbing (`infrastructure/logging/request_id.py`,
`security/headers.py`, `security/body_limit.py`, `auth/csrf.py`, `observability/requests.py`);
this class only wires them into one pass over the headers.
"""

from __future__ import annotations

import asyncio
import time

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.infrastructure.auth.cookies import csrf_cookie_header
from src.infrastructure.config import settings
from src.infrastructure.logging.request_id import request_id_for, request_id_var
from src.infrastructure.observability.requests import record_request
from src.infrastructure.ratelimit import RATE_LIMIT_HEADERS_KEY
from src.infrastructure.route_templates import scope_route_template
from src.infrastructure.security.body_limit import (
    BodyTooLargeError,
    counting_receive,
    too_large_response,
)
from src.infrastructure.security.headers import content_security_policy, security_headers


def overloaded_response() -> JSONResponse:
    return JSONResponse(
        {"detail": "The server is overloaded, try again shortly"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts: bool,
        gzip_minimum_size: int = 1024,
        unstripped_prefixes: tuple[str, ...] = ("/admin",),
        max_concurrent: int = 0,
        queue_timeout: float = 5.0,
        unqueued_paths: frozenset[str] = frozenset({"/health"}),
    ) -> None:
        self.app = app
        self.admission = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
        self.queue_timeout = queue_timeout
        self.unqueued_paths = unqueued_paths
        self.gzip_app = GZipMiddleware(app, minimum_size=gzip_minimum_size)
        self.max_body_bytes = max_body_bytes
        self.static_headers = security_headers(hsts=hsts)
        self.unstripped_prefixes = unstripped_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming_id = cookie = length = None
        gzip = chunked = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value
            elif name == b"x-request-id":
                incoming_id = value
            elif name == b"content-length":
                length = value
            elif name == b"accept-encoding":
                gzip = b"gzip" in value
            elif name == b"transfer-encoding":
                chunked = True
        request_id = request_id_for(incoming_id)
        scope.setdefault("state", {})["request_id"] = request_id
        context = request_id_var.set(request_id)

        path: str = scope["path"]
        if len(path) > 1 and path[-1] == "/" and not path.startswith(self.unstripped_prefixes):
            # In place, before routing, so the router and the metrics see the declared route.
            scope["path"] = path.rstrip("/")
            raw = scope.get("raw_path")
            if raw:
                scope["raw_path"] = raw.rstrip(b"/")

        cookies = cookie_parser(cookie.decode("latin-1")) if cookie else {}
        needs_csrf_cookie = settings.CSRF_COOKIE_NAME not in cookies
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = self._response_headers(
                    scope, message.get("headers", ()), request_id, needs_csrf_cookie, cookies
                )
            await send(message)

        admitted = False
        try:
            if self.admission is not None and scope["path"] not in self.unqueued_paths:
                try:
                    async with asyncio.timeout(self.queue_timeout):
                        await self.admission.acquire()
                except TimeoutError:
                    await overloaded_response()(scope, receive, send_with_headers)
                    return
                admitted = True
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await too_large_response(self.max_body_bytes)(scope, receive, send_with_headers)
                return
            if chunked:
                receive = counting_receive(receive, self.max_body_bytes)
            try:
                await (self.gzip_app if gzip else self.app)(scope, receive, send_with_headers)
            except BodyTooLargeError:
                if started:  # pragma: no cover - an app that answers before reading
                    raise
                await too_large_response(self.max_body_bytes)(scope, receive, send_with_headers)
        finally:
            if admitted:
                self.admission.release()  # type: ignore[union-attr]
            try:  # the access line carries the request id: record before it is unset
                record_request(
                    scope["method"],
                    scope_route_template(scope),
                    scope["path"],
                    status,
                    time.perf_counter() - start,
                )
            finally:
                request_id_var.reset(context)

    def _response_headers(
        self,
        scope: Scope,
        headers: object,
        request_id: str,
        needs_csrf_cookie: bool,
        cookies: dict[str, str],
    ) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = list(headers)  # type: ignore[call-overload]
        present = {name.lower() for name, _ in raw}
        if b"x-request-id" not in present:
            raw.append((b"x-request-id", request_id.encode()))
        raw.extend(item for item in self.static_headers if item[0] not in present)
        if b"content-security-policy" not in present:
            raw.append((b"content-security-policy", content_security_policy(scope["path"])))
        limits = scope.get(RATE_LIMIT_HEADERS_KEY)
        if limits and b"x-ratelimit-limit" not in present:
            raw.extend(limits)
        if needs_csrf_cookie:
            prefix = f"{settings.CSRF_COOKIE_NAME}=".encode()
            if not any(n == b"set-cookie" and v.startswith(prefix) for n, v in raw):
                session = cookies.get(settings.SESSION_COOKIE_NAME)
                raw.append((b"set-cookie", csrf_cookie_header(session).encode("latin-1")))
        return raw
