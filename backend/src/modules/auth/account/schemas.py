"""Request and response shapes of the account lifecycle routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from src.infrastructure.config import settings
from src.modules.user.schemas import Email, Password

# Tokens are 43 characters of base64url; anything far longer is not one of ours.
Token = Field(min_length=16, max_length=128, description="The token from the emailed link")


class EmailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class TokenConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Token


class PasswordResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Token
    new_password: Password


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=settings.PASSWORD_MAX_LENGTH)
    new_password: Password


class EmailChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_email: Email
    password: str = Field(min_length=1, max_length=settings.PASSWORD_MAX_LENGTH)


class Accepted(BaseModel):
    """The same answer whether or not an account exists for the address."""

    detail: str


class Done(BaseModel):
    detail: str
