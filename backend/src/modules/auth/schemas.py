from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from src.modules.user.schemas import UserRead


class LoginRequest(BaseModel):
    """Sign in with a username or an email address."""

    model_config = ConfigDict(extra="ignore")  # OAuth2 form posts add grant_type, scope, ...

    username: str = Field(min_length=1, max_length=254, description="Username or email")
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    user: UserRead
    session_expires_at: datetime


class Principal(BaseModel):
    """Who the caller is: anonymous, or a user through a session."""

    authenticated: bool
    user: UserRead | None = None
    session_id: str | None = None


class SessionRead(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool
