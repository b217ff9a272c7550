"""Who is calling: typed dependencies for routes, `CurrentUser`, `SuperUser` and friends.

Resolving a session costs one query (session joined to its user). A request authenticated by the
session cookie with an unsafe method must also pass the CSRF check.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from src.infrastructure.auth.csrf import check_csrf
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.modules.auth.crud import SessionContext, session_store
from src.modules.common.exceptions import CSRFError, ForbiddenError, NotAuthenticatedError


async def optional_session(request: Request, db: DBSession) -> SessionContext | None:
    """The caller's live session, or None for anonymous callers (and dead session cookies)."""
    token = request.cookies.get(settings.SESSION_COOKIE_NAME)
    if not token:
        return None
    context = await session_store.resolve(db, token)
    if context is not None and not check_csrf(request, token):
        raise CSRFError()
    return context


# Each dependency below takes (request, db) directly instead of chaining Depends(): a flat
# dependency tree is measurably cheaper on the hot path of every authenticated request.


async def current_session(request: Request, db: DBSession) -> SessionContext:
    context = await optional_session(request, db)
    if context is None:
        raise NotAuthenticatedError("Not authenticated: log in first (or the session expired)")
    return context


async def current_user(request: Request, db: DBSession) -> dict[str, Any]:
    return (await current_session(request, db)).user


async def current_superuser(request: Request, db: DBSession) -> dict[str, Any]:
    user = await current_user(request, db)
    if not user["is_superuser"]:
        raise ForbiddenError("This action needs a superuser")
    return user


OptionalSession = Annotated[SessionContext | None, Depends(optional_session)]
CurrentSession = Annotated[SessionContext, Depends(current_session)]
CurrentUser = Annotated[dict[str, Any], Depends(current_user)]
SuperUser = Annotated[dict[str, Any], Depends(current_superuser)]
