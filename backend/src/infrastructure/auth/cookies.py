"""Writing and clearing the session and CSRF cookies with the flags the environment needs."""

from __future__ import annotations

from starlette.responses import Response

from src.infrastructure.auth.tokens import new_csrf_token
from src.infrastructure.config import settings


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        token,
        max_age=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS,
        path="/",
        domain=settings.COOKIE_DOMAIN,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        settings.SESSION_COOKIE_NAME,
        path="/",
        domain=settings.COOKIE_DOMAIN,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def csrf_cookie_header(session_token: str | None) -> str:
    """A complete Set-Cookie value carrying a fresh CSRF token bound to `session_token`.

    Not HttpOnly: the page's JavaScript reads it to echo it in the X-CSRF-Token header.
    """
    parts = [
        f"{settings.CSRF_COOKIE_NAME}={new_csrf_token(session_token)}",
        "Path=/",
        "SameSite=lax",
    ]
    if settings.COOKIE_DOMAIN:
        parts.append(f"Domain={settings.COOKIE_DOMAIN}")
    if settings.cookie_secure:
        parts.append("Secure")
    return "; ".join(parts)


def set_csrf_cookie(response: Response, session_token: str | None) -> None:
    response.headers.append("set-cookie", csrf_cookie_header(session_token))
