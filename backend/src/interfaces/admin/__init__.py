"""The admin panel at `/admin`: sqladmin, mounted by the composition root (`main.py`).

sqladmin renders list/detail/edit pages from the SQLAlchemy models; what is ours:
- sign-in with the app's users and server-side sessions, CSRF on every write, and who may
  enter (`auth.py`, `access.py`);
- the views, with column whitelists and every write in one place per view (`views.py`);
- template overrides (`templates/sqladmin/`: the CSRF token in every page, `admin.js`) and
  pages of our own (`templates/admin/`: action confirmations, sign-out).

Its assets are sqladmin's own (served under `/admin/statics`) and `/admin/assets/admin.js`:
no CDN, no inline script, so the pages run under the docs CSP (`script-src 'self'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqladmin import Admin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from src.infrastructure.config import settings
from src.infrastructure.database.session import get_engine
from src.interfaces.admin.auth import AdminAuth, FreshCsrfCookie
from src.interfaces.admin.views import views

HERE = Path(__file__).parent
BASE_URL = "/admin"


class LazyEngineSessionMaker(async_sessionmaker[AsyncSession]):
    """Sessions on the app's engine, created at the first admin request, not at import (as
    `get_engine` promises: importing the app opens nothing)."""

    def __call__(self, **local_kw: Any) -> AsyncSession:
        if self.kw.get("bind") is None:
            self.kw["bind"] = get_engine()
        return super().__call__(**local_kw)


def mount_admin(app: Starlette) -> Admin:
    """Mount the admin panel on `app` at `/admin`."""
    auth = AdminAuth()
    admin = Admin(
        app,
        # A maker of its own (sqladmin reconfigures the one it is given), bound at first use.
        session_maker=LazyEngineSessionMaker(expire_on_commit=False),
        base_url=BASE_URL,
        title=f"{settings.APP_NAME} admin",
        templates_dir=str(HERE / "templates"),
        authentication_backend=auth,
        middlewares=[Middleware(FreshCsrfCookie)],
    )
    auth.use_templates(admin.templates)
    # The sign-out form's POST (sqladmin's /logout is a GET: there it only shows the form).
    admin.admin.router.routes.append(
        Route("/logout", endpoint=admin.logout, methods=["POST"], name="logout-post")
    )
    admin.admin.mount("/assets", StaticFiles(directory=HERE / "static"), name="assets")
    for view in views():
        admin.add_view(view)

    async def to_index(_: Request) -> RedirectResponse:  # the mount answers /admin/ only
        return RedirectResponse(f"{BASE_URL}/", status_code=307)

    app.add_route(BASE_URL, to_index, include_in_schema=False)
    return admin
