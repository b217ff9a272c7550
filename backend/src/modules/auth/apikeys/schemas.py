from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from src.modules.auth.apikeys.scopes import API_KEY_SCOPES, READ
from src.modules.common.schemas import IsoDateTime

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _known(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - API_KEY_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {unknown}: use {sorted(API_KEY_SCOPES)}")
    if READ not in scopes:
        raise ValueError(f"every key holds {READ!r}")
    return sorted(set(scopes))


Scopes = Annotated[
    list[Annotated[str, StringConstraints(max_length=32)]],
    Field(min_length=1, max_length=len(API_KEY_SCOPES) * 2),
    AfterValidator(_known),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    scopes: Scopes = Field(default_factory=lambda: ["read"])
    expires_at: IsoDateTime | None = None


class ApiKeyUpdate(BaseModel):
    """Only ever narrows: rename, fewer scopes, an earlier expiry, deactivate."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    scopes: Scopes | None = None
    expires_at: IsoDateTime | None = None
    is_active: bool | None = None


class ApiKeyRead(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    is_active: bool
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key: shown this once, never again")
