"""An httpx client that plays the browser's part of the double-submit CSRF flow.

Browsers' JavaScript reads the `csrf_token` cookie and echoes it in `X-CSRF-Token`; this client
does the same on every unsafe request, so tests run with CSRF on, as production does. Pass an
explicit header to override it, or use a plain `AsyncClient` to test the refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from httpx import ASGITransport, AsyncClient, Request, Response

from src.infrastructure.config import settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CSRFAwareClient(AsyncClient):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.event_hooks["request"].append(self._add_csrf_header)

    async def _add_csrf_header(self, request: Request) -> None:
        if request.method not in UNSAFE_METHODS or settings.CSRF_HEADER_NAME in request.headers:
            return
        token = self.cookies.get(settings.CSRF_COOKIE_NAME)
        if token is None:
            # Like a page load before a form post: any response sets the cookie.
            response: Response = await self.get("/health")
            token = response.cookies.get(settings.CSRF_COOKIE_NAME) or self.cookies.get(
                settings.CSRF_COOKIE_NAME
            )
        if token:
            request.headers[settings.CSRF_HEADER_NAME] = token


@asynccontextmanager
async def browser(
    app: Any, *, csrf_aware: bool = True, cookies: dict[str, str] | None = None
) -> AsyncIterator[AsyncClient]:
    """Another browser: a fresh client (cookie jar of its own) on the same app, optionally
    starting with the given cookies."""
    cls = CSRFAwareClient if csrf_aware else AsyncClient
    async with cls(transport=ASGITransport(app=app), base_url="http://test") as other:
        for name, value in (cookies or {}).items():
            other.cookies.set(name, value)
        yield other
