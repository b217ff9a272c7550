"""Double-submit CSRF protection, bound to the session.

Two halves:
- `CSRFCookieMiddleware` (pure ASGI) gives every client a `csrf_token` cookie: any response to
  a request without one sets it, unless the route already set a fresh one (login, logout).
- `check_csrf` runs where a request is authenticated by the session cookie: an unsafe method
  must send `X-CSRF-Token` equal to the cookie, and the token must be signed for this session.
Anonymous requests carry no ambient authority, so they are not checked.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.infrastructure.auth.cookies import csrf_cookie_header
from src.infrastructure.auth.tokens import csrf_token_matches
from src.infrastructure.config import settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _request_cookies(scope: Scope) -> dict[str, str]:
    # Starlette's parser: the same one `Request.cookies` uses, and far cheaper than SimpleCookie.
    for name, value in scope["headers"]:
        if name == b"cookie":
            return cookie_parser(value.decode("latin-1"))
    return {}


class CSRFCookieMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cookie_prefix = f"{settings.CSRF_COOKIE_NAME}=".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _request_cookies(scope)
        if settings.CSRF_COOKIE_NAME in cookies:
            await self.app(scope, receive, send)
            return
        session_token = cookies.get(settings.SESSION_COOKIE_NAME)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                already_set = any(
                    name == b"set-cookie" and value.startswith(self.cookie_prefix)
                    for name, value in message.get("headers", [])
                )
                if not already_set:
                    headers = MutableHeaders(scope=message)
                    headers.append("set-cookie", csrf_cookie_header(session_token))
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def check_csrf(request: Request, session_token: str) -> bool:
    """True when this request may proceed as far as CSRF is concerned."""
    if not settings.CSRF_ENABLED or request.method in SAFE_METHODS:
        return True
    header = request.headers.get(settings.CSRF_HEADER_NAME)
    cookie = request.cookies.get(settings.CSRF_COOKIE_NAME)
    if not header or not cookie or not hmac.compare_digest(header, cookie):
        return False
    return csrf_token_matches(cookie, session_token)
