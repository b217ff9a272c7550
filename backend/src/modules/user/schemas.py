"""Request and response shapes of the user slice. Responses never carry the password hash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from src.infrastructure.config import settings

RESERVED_USERNAMES = frozenset({"me", "admin", "root", "system", "api", "auth", "login", "logout"})


def _check_username(value: str) -> str:
    value = value.lower()
    if value in RESERVED_USERNAMES:
        raise ValueError(f"the username {value!r} is reserved")
    return value


def _check_password(value: str) -> str:
    if value.strip() != value or not value.strip():
        raise ValueError("must not start or end with white space")
    if value.isdigit() or value.isalpha():
        raise ValueError("must mix letters with digits or symbols")
    return value


Username = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=30, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$"
    ),
    AfterValidator(_check_username),
]
Email = Annotated[EmailStr, AfterValidator(str.lower)]
Password = Annotated[
    str,
    Field(min_length=settings.PASSWORD_MIN_LENGTH, max_length=settings.PASSWORD_MAX_LENGTH),
    AfterValidator(_check_password),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    username: Username
    email: Email
    password: Password


class UserCreateInternal(BaseModel):
    """The row the service writes: the sign-up data with the password replaced by its hash."""

    name: str
    username: str
    email: str
    hashed_password: str
    is_superuser: bool = False
    tier_id: int | None = None
    is_verified: bool = False


class UserUpdate(BaseModel):
    """Fields a user may change on their own account. Changing the password needs the old one."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    username: Username | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(default=None, max_length=settings.PASSWORD_MAX_LENGTH)


class UserTierUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_name: str = Field(min_length=1, max_length=50)


class UserRead(BaseModel):
    """A user as they and superusers see it."""

    id: int
    name: str
    username: str
    email: str
    is_superuser: bool
    tier_id: int | None
    is_verified: bool
    created_at: datetime


class UserPublic(BaseModel):
    """What anyone may see of a user."""

    username: str
    name: str
    created_at: datetime
