"""Who is calling: the typed dependencies routes declare (`CurrentUser`, `SuperUser`,
`CurrentSession`, `OptionalSession`), each resolving to a `Principal` or a `SessionContext`.

Resolving a session costs one query (session joined to its user). A request authenticated by the
session cookie with an unsafe method must also pass the CSRF check.

An `X-API-Key` header authenticates instead of the cookie (it wins when both are sent): one
query (the key joined to its owner), a `Principal` with `via="apikey"`, no CSRF check (no
cookie). `CurrentUser`, `SuperUser`, `VerifiedUser` and `OptionalSession` accept a key (an
unsafe method needs its `write` scope); `CurrentSession` and `refuse_api_key` are session-only
and answer a key with 401.

`require_permissions(P, ...)` guards a route by permissions (`Annotated[Principal,
require_permissions(USER_READ)]`): the caller, through a session or a key, must hold every
one (a superuser holds them all), else 403 naming the missing ones. The permissions are part of
the `Principal` the one lookup query built, so the check costs no round trip.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.auth.csrf import SAFE_METHODS, check_csrf
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.modules.auth.apikeys.scopes import WRITE
from src.modules.auth.apikeys.service import resolve_api_key
from src.modules.auth.sessions import Principal, SessionContext, get_session_store
from src.modules.common.exceptions import CSRFError, ForbiddenError, NotAuthenticatedError
from src.modules.common.permissions import Permission

_RESOLVED = "src.auth.session"  # request.scope key: the session resolved for this request
API_KEY_HEADER = "x-api-key"
SESSION_ONLY = "This route needs a signed-in session: API keys are not accepted here"


async def resolve_session(request: Request, db: DBSession) -> SessionContext | None:
    """Who is calling, looked up at most once per request, with no CSRF check.

    For code that only needs to know the caller, such as the rate limiter, which runs before
    the route's own dependencies; routes use `optional_session` and the aliases below.
    """
    api_key = request.headers.get(API_KEY_HEADER)
    token = request.cookies.get(settings.SESSION_COOKIE_NAME)
    if not token and api_key is None:
        return None
    if _RESOLVED in request.scope:
        resolved: SessionContext | None = request.scope[_RESOLVED]
        return resolved
    context: SessionContext | None
    if api_key is not None:
        principal = await resolve_api_key(db, api_key, ip=client_ip(request))
        # No session behind a key: empty session id and token.
        context = None if principal is None else SessionContext("", "", principal)
    else:
        context = await get_session_store().resolve(db, token or "")
    request.scope[_RESOLVED] = context
    return context


def resolved_caller_id(request: Request) -> int | None:
    """The id of the caller this request's dependencies already resolved, or None: a look at
    the request, never a lookup (the audit log's actor)."""
    resolved: SessionContext | None = request.scope.get(_RESOLVED)
    return resolved.principal.id if resolved is not None else None


async def optional_session(request: Request, db: DBSession) -> SessionContext | None:
    """The caller's live session, or None for anonymous callers (and dead session cookies)."""
    context = await resolve_session(request, db)
    if context is None:
        return None
    if context.principal.via == "apikey":
        if request.method not in SAFE_METHODS and WRITE not in context.principal.scopes:
            raise ForbiddenError(f"This API key lacks the {WRITE!r} scope")
    elif not check_csrf(request, context.token):
        raise CSRFError()
    return context


# Each dependency below takes (request, db) directly instead of chaining Depends(): a flat
# dependency tree is measurably cheaper on the hot path of every authenticated request.


async def refuse_api_key(request: Request) -> None:
    """For session-only routes that need no session (logout): 401 for an API key."""
    if API_KEY_HEADER in request.headers:
        raise NotAuthenticatedError(SESSION_ONLY)


async def current_session(request: Request, db: DBSession) -> SessionContext:
    """The caller's browser session: session-only, an API key is a 401."""
    await refuse_api_key(request)
    context = await optional_session(request, db)
    if context is None:
        raise NotAuthenticatedError("Not authenticated: log in first (or the session expired)")
    return context


async def current_user(request: Request, db: DBSession) -> Principal:
    """The caller, through a session or an API key."""
    context = await optional_session(request, db)
    if context is None:
        raise NotAuthenticatedError(
            "Not authenticated: log in first (or the session expired), or send a live X-API-Key"
        )
    return context.principal


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


def missing_permissions_message(missing: list[str]) -> str:
    """The 403 text naming what the caller lacks."""
    plural = "s" if len(missing) > 1 else ""
    return f"Missing permission{plural}: {', '.join(missing)}"


class PermissionCheck:
    """The dependency `require_permissions` builds: the caller (`current_user`), who must hold
    every one of `names`. A class, not a closure, so `src.interfaces.openapi` recognises it
    (401 and 403) whatever it checks."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    async def __call__(self, request: Request, db: DBSession) -> Principal:
        principal = await current_user(request, db)
        missing = principal.missing(self.names)
        if missing:
            raise ForbiddenError(missing_permissions_message(missing))
        return principal

    def __repr__(self) -> str:
        return f"require_permissions({', '.join(self.names)})"


def require_permissions(*permissions: Permission) -> Any:
    """`Depends(...)` on the caller holding all of `permissions`: write
    `caller: Annotated[Principal, require_permissions(USER_READ)]`, or name the alias once
    in the slice (`UserReader = Annotated[Principal, require_permissions(USER_READ)]`)."""
    if not permissions:
        raise ValueError("require_permissions needs at least one permission")
    return Depends(PermissionCheck(tuple(sorted({p.name for p in permissions}))))


OptionalSession = Annotated[SessionContext | None, Depends(optional_session)]
CurrentSession = Annotated[SessionContext, Depends(current_session)]
CurrentUser = Annotated[Principal, Depends(current_user)]
SuperUser = Annotated[Principal, Depends(current_superuser)]
VerifiedUser = Annotated[Principal, Depends(current_verified_user)]
