"""Double-submit CSRF protection, bound to the session.

Two halves:
- The edge middleware (`src/interfaces/edge.py`) gives every client a `csrf_token` cookie: any
  response to a request without one sets it (`csrf_cookie_header`), unless the route already
  set a fresh one (login, logout).
- `check_csrf` runs where a request is authenticated by the session cookie: an unsafe method
  must send `X-CSRF-Token` equal to the cookie, and the token must be signed for this session.
  HTML forms (the admin panel) send the same token in a hidden field (`token_is_valid`).
Anonymous requests carry no ambient authority, so they are not checked.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from src.infrastructure.auth.tokens import csrf_token_matches
from src.infrastructure.config import settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def check_csrf(request: Request, session_token: str) -> bool:
    """True when this request may proceed as far as CSRF is concerned."""
    if not settings.CSRF_ENABLED or request.method in SAFE_METHODS:
        return True
    return token_is_valid(request, request.headers.get(settings.CSRF_HEADER_NAME), session_token)


def token_is_valid(request: Request, submitted: str | None, session_token: str | None) -> bool:
    """The submitted token (a header, or a form field for HTML forms such as the admin's)
    equals the `csrf_token` cookie, and that cookie was signed for this session."""
    cookie = request.cookies.get(settings.CSRF_COOKIE_NAME)
    if not submitted or not cookie:
        return False
    if not hmac.compare_digest(submitted.encode(), cookie.encode()):
        return False
    return csrf_token_matches(cookie, session_token)
