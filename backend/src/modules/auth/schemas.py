from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from src.modules.user.schemas import UserRead


def normalise_identifier(identifier: str) -> str:
    """The one form a login identifier takes (usernames and emails are stored lower-cased):
    the login, the throttle and every "find the account" route use it."""
    return identifier.strip().lower()


class LoginRequest(BaseModel):
    """Sign in with a username or an email address."""

    model_config = ConfigDict(extra="ignore")  # OAuth2 form posts add grant_type, scope, ...

    username: Annotated[
        str,
        Field(min_length=1, max_length=254, description="Username or email"),
        AfterValidator(normalise_identifier),
    ]
    password: str = Field(min_length=1, max_length=1024)
    remember_me: bool = Field(
        default=False,
        description="Keep the session cookie after the browser closes (else it is a "
        "browser-session cookie); the server-side timeouts apply either way",
    )


class LoginResponse(BaseModel):
    """Signed in: the session cookie is set."""

    user: UserRead
    session_expires_at: datetime


class MfaRequiredResponse(BaseModel):
    """The password was right but the account has MFA on: no session yet. A pending sign-in
    cookie is set; `POST /auth/mfa/verify` with a code completes it."""

    mfa_required: Literal[True] = True


class WhoAmI(BaseModel):
    """Who the caller is: anonymous, or a user through a session or an API key (`via`)."""

    authenticated: bool
    user: UserRead | None = None
    session_id: str | None = None
    via: Literal["session", "apikey"] | None = None


class SessionRead(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool
