"""Who is calling: the typed dependencies routes declare (`CurrentUser`, `SuperUser`,
`CurrentSession`, `OptionalSession`), each resolving to a `Principal` or a `SessionContext`.

Resolving a session costs one query (session joined to its user). A request authenticated by the
session cookie with an unsafe method must also pass the CSRF check.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from src.infrastructure.auth.csrf import check_csrf
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.modules.auth.sessions import Principal, SessionContext, get_session_store
from src.modules.common.exceptions import CSRFError, ForbiddenError, NotAuthenticatedError

_RESOLVED = "src.auth.session"  # request.scope key: the session resolved for this request


async def resolve_session(request: Request, db: DBSession) -> SessionContext | None:
    """Who is calling, looked up at most once per request, with no CSRF check.

    For code that only needs to know the caller, such as the rate limiter, which runs before
    the route's own dependencies; routes use `optional_session` and the aliases below.
    """
    token = request.cookies.get(settings.SESSION_COOKIE_NAME)
    if not token:
        return None
    if _RESOLVED in request.scope:
        resolved: SessionContext | None = request.scope[_RESOLVED]
        return resolved
    context = await get_session_store().resolve(db, token)
    request.scope[_RESOLVED] = context
    return context


async def optional_session(request: Request, db: DBSession) -> SessionContext | None:
    """The caller's live session, or None for anonymous callers (and dead session cookies)."""
    context = await resolve_session(request, db)
    if context is not None and not check_csrf(request, context.token):
        raise CSRFError()
    return context


# Each dependency below takes (request, db) directly instead of chaining Depends(): a flat
# dependency tree is measurably cheaper on the hot path of every authenticated request.


async def current_session(request: Request, db: DBSession) -> SessionContext:
    context = await optional_session(request, db)
    if context is None:
        raise NotAuthenticatedError("Not authenticated: log in first (or the session expired)")
    return context


async def current_user(request: Request, db: DBSession) -> Principal:
    return (await current_session(request, db)).principal


async def current_superuser(request: Request, db: DBSession) -> Principal:
    principal = await current_user(request, db)
    if not principal.is_superuser:
        raise ForbiddenError("This action needs a superuser")
    return principal


UNVERIFIED = (
    "Verify your email address first: follow the link we sent, or ask for a new one with "
    "POST /api/v1/auth/email/verify-request"
)


async def current_verified_user(request: Request, db: DBSession) -> Principal:
    """The caller, who must have verified their email when `EMAIL_VERIFICATION_REQUIRED`."""
    principal = await current_user(request, db)
    if settings.EMAIL_VERIFICATION_REQUIRED and not principal.is_verified:
        raise ForbiddenError(UNVERIFIED)
    return principal


OptionalSession = Annotated[SessionContext | None, Depends(optional_session)]
CurrentSession = Annotated[SessionContext, Depends(current_session)]
CurrentUser = Annotated[Principal, Depends(current_user)]
SuperUser = Annotated[Principal, Depends(current_superuser)]
VerifiedUser = Annotated[Principal, Depends(current_verified_user)]
