"""Request and response shapes of rate-limit rules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

ALL_ROUTES = "*"
MAX_PERIOD_SECONDS = 30 * 24 * 60 * 60


def _normalise_path(value: str) -> str:
    if value == ALL_ROUTES:
        return value
    if not value.startswith("/"):
        raise ValueError(
            f"must be a route template such as /api/v1/users/{{username}}, or {ALL_ROUTES!r}"
        )
    # Routes are declared without the trailing slash (both spellings reach the same route).
    return value.rstrip("/") or "/"


RoutePath = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_normalise_path),
]
PATH_DESCRIPTION = (
    "A route template as declared (`/api/v1/users/{username}`), or `*` for every route of the "
    "tier without a rule of its own"
)
# The OpenAPI document lists the API's route templates as this field's `enum`
# (`src/interfaces/openapi.py`): what the routes accept (`_require_known_path`).
ROUTE_TEMPLATE: dict[str, Any] = {"x-route-template": True}
MaxRequests = Annotated[int, Field(ge=1, le=1_000_000_000)]
PeriodSeconds = Annotated[int, Field(ge=1, le=MAX_PERIOD_SECONDS)]


class RateLimitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: RoutePath = Field(description=PATH_DESCRIPTION, json_schema_extra=ROUTE_TEMPLATE)
    max_requests: MaxRequests
    period_seconds: PeriodSeconds


class RateLimitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Leave a field out to keep its value (null is refused, so the schema does not offer it).
    path: RoutePath | SkipJsonSchema[None] = Field(
        default=None, description=PATH_DESCRIPTION, json_schema_extra=ROUTE_TEMPLATE
    )
    max_requests: MaxRequests | SkipJsonSchema[None] = None
    period_seconds: PeriodSeconds | SkipJsonSchema[None] = None

    @field_validator("path", "max_requests", "period_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> RateLimitUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of path, max_requests, period_seconds")
        return self


class RateLimitRead(BaseModel):
    id: int
    tier_id: int
    path: str
    max_requests: int
    period_seconds: int
    created_at: datetime
    updated_at: datetime | None


class RateLimitCreateInternal(BaseModel):
    """The row the service writes."""

    tier_id: int
    path: str
    max_requests: int
    period_seconds: int
