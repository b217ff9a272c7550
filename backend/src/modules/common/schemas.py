"""Schemas shared by slices: the pagination envelope and its query parameters, bounded path ids,
and the error model every route documents (`ErrorResponse`, `responses(...)`)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator

from src.infrastructure.config import settings

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The envelope of every list endpoint."""

    data: list[T]
    total_count: int
    has_more: bool
    page: int
    items_per_page: int


class PageParams(BaseModel):
    page: int
    items_per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.items_per_page


async def _page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    items_per_page: Annotated[
        int, Query(ge=1, le=settings.MAX_PAGE_SIZE, description="Page size (capped)")
    ] = settings.DEFAULT_PAGE_SIZE,
) -> PageParams:
    return PageParams(page=page, items_per_page=items_per_page)


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
# thread hop on every request that uses it (seen in the list route's profile).
Pagination = Annotated[PageParams, Depends(_page_params)]


def build_page(rows: list[Any], total_count: int, params: PageParams) -> dict[str, Any]:
    """The `Page` envelope as a dict; the route's `response_model` validates and serialises it."""
    return {
        "data": rows,
        "total_count": total_count,
        "has_more": params.offset + len(rows) < total_count,
        "page": params.page,
        "items_per_page": params.items_per_page,
    }


# --- the API contract: path parameters and error responses -------------------------------------

# A database id in a path: 1 to the largest 32-bit signed integer (an INTEGER column on every
# database we run on), so a huge number is a 422 at the edge of the API, never a database error.
MAX_ID = 2**31 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive id")]


class ValidationIssue(BaseModel):
    """One refused value: where (`loc`, e.g. `["body", "email"]`), why, and a stable `type`."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error the API answers: a message, or (422) one issue per refused value."""

    detail: str | list[ValidationIssue]


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": "integer", "minimum": 0}}
    for name, description in (
        ("X-RateLimit-Limit", "Requests allowed in the window (the per-route limiter)"),
        ("X-RateLimit-Remaining", "Requests left in the window"),
        ("X-RateLimit-Reset", "Seconds until the window resets"),
    )
}
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Refused: the request is well formed but wrong (see `detail`)",
    401: "Not authenticated: no live session (or a missing or expired sign-in step)",
    403: "Forbidden: not allowed for this caller, or the CSRF header is missing or wrong",
    404: "Not found",
    409: "Conflict with the current state (e.g. a value already taken)",
    413: "Request body too large (`MAX_REQUEST_BODY_BYTES`)",
    415: "Unsupported media type",
    422: "Validation error: `detail` lists each refused value (or says why, as text)",
    429: "Too many requests: wait `Retry-After` seconds",
    503: "Temporarily unavailable (a dependency is down or the server is saturated): "
    "retry after `Retry-After` seconds",
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    429: _RETRY_AFTER | _RATE_LIMIT_HEADERS,
    503: _RETRY_AFTER,
}


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of an error status: `ErrorResponse`, plus its headers."""
    response: dict[str, Any] = {
        "model": ErrorResponse,
        "description": description or ERROR_DESCRIPTIONS[status],
    }
    if status in _ERROR_HEADERS:
        response["headers"] = _ERROR_HEADERS[status]
    return response


def responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the error model, e.g. `responses(404, 409)`.
    A description of a route's own goes by keyword: `responses(400, e400="Wrong code")`.

    Only what the route itself raises: 401/403 of the caller dependencies, 404 of path
    parameters, 413/422/429/503 are added to every route that can answer them when the app is
    built (`src/interfaces/openapi.py`)."""
    return {status: error_response(status, descriptions.get(f"e{status}")) for status in statuses}


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_text(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would also read a number (or numeric text) as a Unix
    time, which the schema (`format: date-time`) does not allow."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


# A time given by a client: ISO 8601 text with an offset, never a bare number.
IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
