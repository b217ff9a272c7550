"""Writing and clearing the session, CSRF, device, pending-MFA and OAuth-flow cookies with the
flags the environment needs."""

from __future__ import annotations

from starlette.responses import Response

from src.infrastructure.auth.tokens import new_csrf_token
from src.infrastructure.config import settings


def set_session_cookie(response: Response, token: str, *, persistent: bool = True) -> None:
    """`persistent=False` (login without "remember me"): a browser-session cookie, gone when
    the browser closes; the server-side timeouts apply either way."""
    response.set_cookie(
        settings.SESSION_COOKIE_NAME,
        token,
        max_age=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS if persistent else None,
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


AUTH_COOKIE_PATH = "/api/v1/auth"  # the sign-in routes: the only ones that need these cookies
DEVICE_COOKIE_PATH = AUTH_COOKIE_PATH


def set_device_cookie(response: Response, value: str) -> None:
    """The signed "this browser signed in here before" cookie the login throttle trusts."""
    response.set_cookie(
        settings.DEVICE_COOKIE_NAME,
        value,
        max_age=settings.DEVICE_COOKIE_MAX_AGE_SECONDS,
        path=DEVICE_COOKIE_PATH,
        domain=settings.COOKIE_DOMAIN,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def set_sign_in_cookies(
    response: Response, *, session_token: str, device_token: str, persistent: bool
) -> None:
    """What a completed sign-in (a password, or a password and a second factor) hands the
    browser: the session cookie, a fresh CSRF token bound to it and the device cookie."""
    set_session_cookie(response, session_token, persistent=persistent)
    set_csrf_cookie(response, session_token)
    set_device_cookie(response, device_token)


def set_mfa_pending_cookie(response: Response, token: str) -> None:
    """The pending sign-in of an MFA account (its password was right, its code is still due):
    only `POST /auth/mfa/verify` reads it, so it lives under the auth path, for as long as
    the pending token does."""
    response.set_cookie(
        settings.MFA_PENDING_COOKIE_NAME,
        token,
        max_age=settings.MFA_PENDING_TTL_SECONDS,
        path=AUTH_COOKIE_PATH,
        domain=settings.COOKIE_DOMAIN,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


OAUTH_FLOW_COOKIE_NAME = "oauth_flow"
OAUTH_FLOW_COOKIE_PATH = "/api/v1/auth/oauth"  # sent back to the OAuth routes only


def set_oauth_flow_cookie(response: Response, value: str, *, max_age: int) -> None:
    """The sealed OAuth sign-in in progress, bound to this browser. SameSite=Lax, not Strict:
    the provider sends the browser back with a cross-site top-level GET, which must carry it.
    Host-only (no COOKIE_DOMAIN): only this API reads it."""
    response.set_cookie(
        OAUTH_FLOW_COOKIE_NAME,
        value,
        max_age=max_age,
        path=OAUTH_FLOW_COOKIE_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_mfa_pending_cookie(response: Response) -> None:
    response.delete_cookie(
        settings.MFA_PENDING_COOKIE_NAME,
        path=AUTH_COOKIE_PATH,
        domain=settings.COOKIE_DOMAIN,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_oauth_flow_cookie(response: Response) -> None:
    response.delete_cookie(
        OAUTH_FLOW_COOKIE_NAME,
        path=OAUTH_FLOW_COOKIE_PATH,
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def csrf_cookie_header(session_token: str | None, token: str | None = None) -> str:
    """A complete Set-Cookie value carrying a fresh CSRF token bound to `session_token` (or
    `token`, one `new_csrf_token` just made for it, e.g. to put in a page as well).

    Not HttpOnly: the page's JavaScript reads it to echo it in the X-CSRF-Token header.
    """
    parts = [
        f"{settings.CSRF_COOKIE_NAME}={token or new_csrf_token(session_token)}",
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
