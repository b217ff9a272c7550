"""Every API path answers with and without a trailing slash, with no redirect.

Routes are declared without the slash; this pure ASGI middleware strips the trailing slash
before routing (except under mounted sub-apps such as the admin panel, which route themselves).
Cheaper and clearer than registering every route twice, and no 307 round trip (which would
also drop a POST body in some clients).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class TrailingSlashMiddleware:
    def __init__(self, app: ASGIApp, *, exclude: tuple[str, ...] = ("/admin",)) -> None:
        self.app = app
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/") and not path.startswith(self.exclude):
                # In place, so outer middleware (metrics) sees the route the router sets.
                scope["path"] = path.rstrip("/")
                raw = scope.get("raw_path")
                if raw:
                    scope["raw_path"] = raw.rstrip(b"/")
        await self.app(scope, receive, send)
