"""Exception handlers: every error is `{"detail": ...}` JSON with the right status.

Domain exceptions map to their status; validation errors name the field but never echo the
input (it may be a password); a dependency that is down or saturated (database unreachable,
pool exhausted, Redis unreachable) is a 503 with `Retry-After`, logged once with the request
id; anything unexpected is logged with its stack trace and answered with a bare 500 carrying
the request id, never the trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from src.infrastructure.availability import UNAVAILABLE_ERRORS, is_unavailable
from src.infrastructure.logging.request_id import HEADER as REQUEST_ID_HEADER
from src.infrastructure.route_templates import scope_route_template
from src.modules.common.exceptions import DomainError, InvalidValueError, RetryLaterError

logger = logging.getLogger("src.errors")


def _request_id_headers(request: Request) -> dict[str, str]:
    request_id = request.scope.get("state", {}).get("request_id")
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers: dict[str, str] = dict(getattr(exc, "headers", None) or {})  # e.g. X-RateLimit-*
    if isinstance(exc, RetryLaterError):
        headers["Retry-After"] = str(exc.retry_after)
    detail: Any = exc.detail
    if isinstance(exc, InvalidValueError) and exc.field:  # as a validation error would say it
        detail = [{"loc": ["body", exc.field], "msg": exc.detail, "type": exc.error_type}]
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def allowed_methods(request: Request) -> str:
    """`Allow` for a 405: the methods declared for the route template the path matched.
    Starlette names only the methods of the first route whose path matched, so `PATCH` and
    `DELETE /tiers/{name}` would be missing next to `GET`. Computed only when answering a 405."""
    template = scope_route_template(request.scope)
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path_format == template and route.methods:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _clean(error: dict[str, Any]) -> dict[str, Any]:
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_clean(error) for error in exc.errors()]}, status_code=422)


RETRY_AFTER_SECONDS = 1


async def unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After: the database or a Redis is down, or the pool has no connection free
    within `DATABASE_POOL_TIMEOUT`. One warning line (the request id is in the log context)."""
    what = "database connection pool exhausted" if isinstance(exc, PoolTimeoutError) else None
    logger.warning(
        "dependency unavailable on %s %s: %s",
        request.method,
        request.url.path,
        what or f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **_request_id_headers(request)}
    return JSONResponse(
        {"detail": "Service temporarily unavailable, try again shortly"},
        status_code=503,
        headers=headers,
    )


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """SQLSTATE class 22 (data exception: a value the schemas let through but the database
    refuses, say a NUL character in text on Postgres) is bad input, 422; a lost connection is a
    503; the rest is a 500."""
    if is_unavailable(exc):
        return await unavailable_handler(request, exc)
    code = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if not (isinstance(exc, DataError) or code.startswith("22")):
        return await unhandled_error_handler(request, exc)
    logger.info("database refused a value on %s %s: %s", request.method, request.url.path, exc)
    detail = "A value in the request cannot be stored (for example it contains a NUL character)"
    return JSONResponse({"detail": detail}, status_code=422)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_unavailable(exc):
        return await unavailable_handler(request, exc)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": "Internal server error"}, status_code=500, headers=_request_id_headers(request)
    )


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    for unavailable in UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, unavailable_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
