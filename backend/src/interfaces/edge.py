"""The edge of the app: one pure ASGI middleware for what every HTTP request and response needs.

On the way in: a request id (the client's sane `X-Request-ID` or a new one, in the logging
context for the request's duration); the trailing slash stripped before routing (every API path
answers with and without it, with no redirect; mounted sub-apps such as `/admin` route
themselves); a declared body over `MAX_REQUEST_BODY_BYTES` refused with a JSON 413, and a body
of undeclared length counted as it arrives; gzip only for clients that accept it.

On the way out (`http.response.start`): `X-Request-ID`, the security headers and CSP, the
`X-RateLimit-*` headers the rate limiter left in the scope, and a `csrf_token` cookie when the
request had none (unless the route set a fresh one, as login and logout do).

Backpressure: at most `max_concurrent` requests without a body (reads, deletes) run at once;
the others wait their turn in arrival order (a FIFO semaphore) before any work is done for
them, and one that waited longer than `queue_timeout` seconds is answered 503 with
`Retry-After` without running. Requests with a body do not queue, so a client that sends its
body slowly never holds a slot (their size is bounded, and their database use by the pool
timeout); neither do the probes and the metrics scrape. Under a flood
the requests inside the app get the CPU and release their database connection quickly, instead
of hundreds of half-started requests sharing the loop while the pool runs dry (measured at 256
connections: 10% 503s and timeouts without it).

Afterwards: the request's metrics and its access log line, labelled by route template.

An exception no handler took (a bug) is answered here by `on_error` (which logs it, with its
trace, once) instead of escaping: past this layer Starlette would answer it and then raise it
again for the server, which logs the same trace a second time.

One class rather than one per concern because each ASGI layer costs a call and a `send`
wrapper on every request: the seven layers this replaces cost about a seventh of a cached read.
What each concern means lives with its plumbing (`infrastructure/logging/request_id.py`,
`security/headers.py`, `security/body_limit.py`, `auth/csrf.py`, `observability/requests.py`);
this class only wires them into one pass over the headers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, Response
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

QUEUED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_RESPONSE_KEY = "edge.response"


async def _send_scope_response(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app answering with the response the edge left in the scope."""
    response: Response = scope.pop(_RESPONSE_KEY)
    await response(scope, receive, send)


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
        unqueued_paths: frozenset[str] = frozenset({"/health", "/health/ready", "/metrics"}),
        wrap_own_responses: Callable[[ASGIApp], ASGIApp] | None = None,
        on_error: Callable[[Request, Exception], Awaitable[Response]] | None = None,
    ) -> None:
        self.app = app
        self.on_error = on_error
        self.admission = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
        self.queue_timeout = queue_timeout
        self.unqueued_paths = unqueued_paths
        self.gzip_app = GZipMiddleware(app, minimum_size=gzip_minimum_size)
        self.max_body_bytes = max_body_bytes
        self.static_headers = security_headers(hsts=hsts)
        self.unstripped_prefixes = unstripped_prefixes
        # The edge's own answers (413, 503) pass what the app's do, e.g. CORS, so a browser
        # can read them.
        self.own_responses = (wrap_own_responses or (lambda inner: inner))(_send_scope_response)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming_id = cookie = length = encodings = None
        chunked = False
        for name, value in scope["headers"]:  # the first of repeated headers counts
            if name == b"cookie":
                cookie = cookie or value
            elif name == b"x-request-id":
                incoming_id = incoming_id or value
            elif name == b"content-length":
                length = length or value
            elif name == b"accept-encoding":
                encodings = encodings or value
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

        declared = int(length) if length is not None and length.isdigit() else None
        admitted = False
        try:
            if declared is not None and declared > self.max_body_bytes:
                await self._answer(
                    too_large_response(self.max_body_bytes), scope, receive, send_with_headers
                )
                return
            # Only requests without a body queue: a slot is never held by a client that is
            # slow to send one (bodies are bounded, and writes by the pool timeout).
            if (
                self.admission is not None
                and scope["method"] in QUEUED_METHODS
                and not chunked
                and not declared
                and scope["path"] not in self.unqueued_paths
            ):
                if self.admission.locked():  # wait for a slot, at most queue_timeout
                    try:
                        async with asyncio.timeout(self.queue_timeout):
                            await self.admission.acquire()
                    except TimeoutError:
                        await self._answer(overloaded_response(), scope, receive, send_with_headers)
                        return
                else:  # a free slot: taken at once, no timer to arm and cancel
                    await self.admission.acquire()
                admitted = True
            if declared is None:  # chunked, or no length at all (HTTP/2): count as it comes
                receive = counting_receive(receive, self.max_body_bytes)
            gzip = encodings is not None and b"gzip" in encodings
            try:
                await (self.gzip_app if gzip else self.app)(scope, receive, send_with_headers)
            except BodyTooLargeError:
                if started:  # pragma: no cover - an app that answers before reading
                    raise
                await self._answer(
                    too_large_response(self.max_body_bytes), scope, receive, send_with_headers
                )
            except Exception as error:
                if started or self.on_error is None:
                    raise  # too late for another answer: the server ends the connection
                response = await self.on_error(Request(scope), error)
                await self._answer(response, scope, receive, send_with_headers)
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

    async def _answer(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_RESPONSE_KEY] = response
        await self.own_responses(scope, receive, send)

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
        # Whether a response is compressed depends on Accept-Encoding: caches must know.
        for index, (name, value) in enumerate(raw):
            if name.lower() == b"vary":
                if b"accept-encoding" not in value.lower():
                    raw[index] = (name, value + b", Accept-Encoding")
                break
        else:
            raw.append((b"vary", b"Accept-Encoding"))
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
