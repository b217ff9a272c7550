"""Request and response shapes of the user slice. Responses never carry the password hash."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from src.infrastructure.config import settings
from src.modules.user.password_policy import PasswordPolicyError, check_password

RESERVED_USERNAMES = frozenset({"me", "admin", "root", "system", "api", "auth", "login", "logout"})


def _check_username(value: str) -> str:
    value = value.lower()
    if value in RESERVED_USERNAMES:
        raise ValueError(f"the username {value!r} is reserved")
    return value


def _check_password(value: str | None, info: ValidationInfo) -> str | None:
    """The password policy, with the account's fields validated so far (`info.data`).

    A field validator rather than a model validator, so the error is the password field's
    (`loc` ends in "password") and shows up together with the other fields' errors. It relies
    on `password` being declared after `name`, `username` and `email` (pydantic validates in
    declaration order; a unit test keeps it so). The service checks a changed password again
    against the stored username and email when the update does not carry them."""
    if value is None:
        return None
    try:
        check_password(
            value,
            username=info.data.get("username"),
            email=info.data.get("email"),
            name=info.data.get("name"),
        )
    except PasswordPolicyError as exc:
        raise PydanticCustomError("password_policy", "{reason}", {"reason": str(exc)}) from None
    return value


def _email_not_here(value: object) -> None:
    raise ValueError(
        "the email cannot be changed here: use POST /api/v1/auth/email/change-request "
        "(the new address must be confirmed first)"
    )


USERNAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# The JSON schema's pattern also leaves out the reserved names (in any case), so that every
# username the schema allows is accepted; the server checks the reserved ones after the
# pattern (the regex engine of pydantic has no lookahead).
_RESERVED_LOOKAHEAD = "|".join(_any_case(name) for name in sorted(RESERVED_USERNAMES))
Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=30, pattern=USERNAME_PATTERN),
    Field(json_schema_extra={"pattern": f"^(?!(?:{_RESERVED_LOOKAHEAD})$){USERNAME_PATTERN[1:]}"}),
    AfterValidator(_check_username),
]


def _check_email(value: str) -> str:
    """A syntactically valid address (`email-validator`, no deliverability check), lower-cased.
    What it refuses besides the syntax is stated in `EMAIL_PATTERN`."""
    try:
        checked = validate_email(value, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None
    return checked.normalized.lower()


# What `format: email` allows and the server refuses, as a pattern for the JSON schema: a
# quoted local part, an IP address after the @, and a special-use domain (`.test`, ...).
_SPECIAL_USE = "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = rf'^(?!")(?![^@]*@\[)(?!.*[@.](?:{_SPECIAL_USE})$)'
Email = Annotated[
    str,
    Field(max_length=254, json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN}),
    AfterValidator(_check_email),
]


# The policy (length included) is `password_policy.check_password`, run by the models below;
# the bounds are repeated in the JSON schema for clients only.
Password = Annotated[
    str,
    Field(
        json_schema_extra={
            "minLength": settings.PASSWORD_MIN_LENGTH,
            "maxLength": settings.PASSWORD_MAX_LENGTH,
        }
    ),
]
# Stripped after the checks, so the bounds are those of the JSON schema: 1 to 50 characters,
# at least one of them not white space.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=50, pattern=r"\S"), AfterValidator(str.strip)
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    username: Username
    email: Email
    password: Password  # after the fields the policy compares it with

    _password_policy = field_validator("password")(_check_password)


class UserCreateInternal(BaseModel):
    """The row the service writes: the sign-up data with the password replaced by its hash."""

    name: str
    username: str
    email: str
    hashed_password: str
    is_superuser: bool = False
    is_verified: bool = False
    tier_id: int | None = None


class UserUpdate(BaseModel):
    """Fields of an account `PATCH /users/{username}` changes. `password` only for a superuser
    setting someone else's (your own: `POST /api/v1/auth/change-password`). The email is not
    one of them: it changes only once the new address is confirmed
    (`POST /api/v1/auth/email/change-request`)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    username: Username | None = None
    password: Password | None = None  # after the fields the policy compares it with
    # Not settable: named here only so that sending it gets a 422 saying where to go.
    email: SkipJsonSchema[Annotated[None, BeforeValidator(_email_not_here)]] = None

    _password_policy = field_validator("password")(_check_password)


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
