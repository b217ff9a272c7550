"""Signing in to the admin panel: the app's own users, sessions and CSRF, no second system.

sqladmin asks an `AuthenticationBackend` three things; this one answers them with what the
API uses:

- `authenticate` (every admin page): the session cookie resolved by the session store (one
  lookup, as for an API request), the caller allowed by `can_use_admin`, and for a request
  that writes (any method but GET/HEAD/OPTIONS) the double-submit CSRF token: the hidden
  `csrf_token` form field (or the `X-CSRF-Token` header of the delete dialog's request) must
  equal the `csrf_token` cookie, signed for this session. A write without it is refused (403).
- `login` (the form at /admin/login): `AuthService.login`, so the login throttle, its 429 and
  its fail-closed 503 apply; the same cookies as `POST /api/v1/auth/login`. The form is
  CSRF-checked too (login CSRF) and refused cross-site. An account with MFA on is sent to
  sign in through the app (its session then opens the admin as well: same cookie).
- `logout`: GET shows a sign-out form, its POST (CSRF-checked) ends the session on the server.

sqladmin's own signed-cookie session (Starlette's `SessionMiddleware`) is not installed: the
server-side session is the only state. Hand-written: sqladmin ships no CSRF protection, so
`csrf_token` (the template global) and `FreshCsrfCookie` put a token signed for the current
session in every page and, when the browser's cookie does not hold one, set it.
"""

from __future__ import annotations

from typing import Any

from sqladmin.authentication import AuthenticationBackend
from sqladmin.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.auth.cookies import (
    clear_session_cookie,
    csrf_cookie_header,
    set_csrf_cookie,
    set_sign_in_cookies,
)
from src.infrastructure.auth.csrf import SAFE_METHODS, token_is_valid
from src.infrastructure.auth.tokens import csrf_token_matches, new_csrf_token
from src.infrastructure.config import settings
from src.infrastructure.database.session import get_read_sessionmaker, get_sessionmaker
from src.infrastructure.logging.request_id import current_request_id
from src.interfaces.admin.access import can_use_admin
from src.modules.audit.context import AuditContext
from src.modules.auth.schemas import LoginRequest
from src.modules.auth.service import AuthService, MfaRequired
from src.modules.auth.sessions import Principal, SessionContext, get_session_store
from src.modules.common.exceptions import DomainError, RetryLaterError

FORM_FIELD = "csrf_token"
_FRESH = "src.admin.csrf"  # scope key: a token minted for this page, to be set as the cookie
_CONTEXT = "src.admin.session"  # scope key: the session `authenticate` resolved

REFUSED = "This account may not use the admin panel"
CSRF_REFUSED = "The form was not sent from this site's page (missing or stale CSRF token)"
MFA_ELSEWHERE = (
    "This account signs in with a second factor: sign in through the app, then open the "
    "admin panel again (the same session is used)."
)
BAD_INPUT = "Enter a username (or email) and a password"


def csrf_token(request: Request) -> str:
    """The CSRF token the page carries: the cookie's, when it is signed for this session;
    otherwise a fresh one, which `FreshCsrfCookie` sets as the cookie on the way out."""
    minted: str | None = request.scope.get(_FRESH)
    if minted:
        return minted
    session = request.cookies.get(settings.SESSION_COOKIE_NAME)
    cookie = request.cookies.get(settings.CSRF_COOKIE_NAME)
    if cookie and csrf_token_matches(cookie, session):
        return cookie
    fresh = new_csrf_token(session)
    request.scope[_FRESH] = fresh
    return fresh


class FreshCsrfCookie:
    """Sets the token `csrf_token` minted for a page as the `csrf_token` cookie (pure ASGI),
    unless the response sets one itself (sign-in, sign-out)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            minted = scope.get(_FRESH)
            if message["type"] == "http.response.start" and minted:
                headers = list(message.get("headers", ()))
                prefix = f"{settings.CSRF_COOKIE_NAME}=".encode()
                if not any(n == b"set-cookie" and v.startswith(prefix) for n, v in headers):
                    session = Request(scope).cookies.get(settings.SESSION_COOKIE_NAME)
                    value = csrf_cookie_header(session, minted).encode("latin-1")
                    headers.append((b"set-cookie", value))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def admin_audit(request: Request) -> AuditContext:
    """The audit facts of an admin request (rows carry `via: admin`): the signed-in admin once
    there is one, from where, which request."""

    def actor() -> int | None:
        context: SessionContext | None = request.scope.get(_CONTEXT)
        return None if context is None else context.principal.id

    return AuditContext(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=current_request_id(),
        actor=actor,
        via="admin",
    )


def admin_principal(request: Request) -> Principal:
    """The signed-in admin of this request (set by `authenticate`)."""
    context: SessionContext = request.scope[_CONTEXT]
    return context.principal


async def _submitted_token(request: Request) -> str | None:
    header = request.headers.get(settings.CSRF_HEADER_NAME)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        # Starlette keeps the parsed form on the request: the endpoint reads the same one.
        value = (await request.form()).get(FORM_FIELD)
        return value if isinstance(value, str) else None
    return None


async def csrf_passes(request: Request, session_token: str | None) -> bool:
    if not settings.CSRF_ENABLED or request.method in SAFE_METHODS:
        return True
    return token_is_valid(request, await _submitted_token(request), session_token)


class AdminAuth(AuthenticationBackend):
    def __init__(self) -> None:  # no super(): no signed-cookie session next to the real one
        self.middlewares = []
        self._templates: Jinja2Templates | None = None

    def use_templates(self, templates: Jinja2Templates) -> None:
        self._templates = templates
        templates.env.globals["csrf_token"] = csrf_token

    async def _page(
        self, request: Request, name: str, context: dict[str, Any], status_code: int
    ) -> Response:
        assert self._templates is not None, "AdminAuth.use_templates was not called"
        return await self._templates.TemplateResponse(
            request, name, context, status_code=status_code
        )

    async def _login_page(self, request: Request, error: str, status_code: int) -> Response:
        return await self._page(request, "sqladmin/login.html", {"error": error}, status_code)

    async def authenticate(self, request: Request) -> Response | bool:
        token = request.cookies.get(settings.SESSION_COOKIE_NAME)
        if not token:
            return False
        # Autocommit, as an API read: the lookup is one query (the store may also bump the
        # session's last-seen time, a single statement).
        async with get_read_sessionmaker()() as db:
            context = await get_session_store().resolve(db, token)
        if context is None:
            return False  # sqladmin redirects to the login page
        if not can_use_admin(context.principal):
            return await self._page(request, "admin/logout.html", {"message": REFUSED}, 403)
        if not await csrf_passes(request, token):
            return await self._page(
                request, "sqladmin/error.html", {"status_code": 403, "message": CSRF_REFUSED}, 403
            )
        request.scope[_CONTEXT] = context
        return True

    async def get_user_id(self, request: Request) -> Any:
        context: SessionContext | None = request.scope.get(_CONTEXT)
        return None if context is None else context.principal.id

    async def login(self, request: Request) -> Response | bool:
        if request.headers.get("sec-fetch-site") == "cross-site":
            return await self._login_page(request, "Cross-site sign-in is refused", 403)
        previous = request.cookies.get(settings.SESSION_COOKIE_NAME)
        if not await csrf_passes(request, previous):
            return await self._login_page(request, CSRF_REFUSED, 403)
        form = await request.form()
        try:
            credentials = LoginRequest.model_validate(
                {"username": form.get("username"), "password": form.get("password")}
            )
        except ValueError:
            return await self._login_page(request, BAD_INPUT, 400)
        try:
            async with get_sessionmaker()() as db:
                result = await AuthService().login(
                    identifier=credentials.username,
                    password=credentials.password,
                    db=db,
                    audit=admin_audit(request),
                    ip_address=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                    previous_token=previous,
                    device_token=None,  # the device cookie lives under /api/v1/auth
                )
                allowed = False
                if not isinstance(result, MfaRequired):
                    # The new session as every later request sees it: with the permissions
                    # of the user's roles (`admin.access`), which the login result lacks.
                    context = await get_session_store().resolve(db, result.token)
                    allowed = context is not None and can_use_admin(context.principal)
                    if not allowed:
                        await AuthService().logout(
                            token=result.token, db=db, audit=admin_audit(request)
                        )
        except DomainError as error:
            response = await self._login_page(request, error.detail, error.status_code)
            if isinstance(error, RetryLaterError):
                response.headers["Retry-After"] = str(error.retry_after)
            return response
        if isinstance(result, MfaRequired):
            return await self._login_page(request, MFA_ELSEWHERE, 403)
        if not allowed:  # its new session was ended above
            return await self._login_page(request, REFUSED, 403)
        response = RedirectResponse(request.url_for("admin:index"), status_code=303)
        set_sign_in_cookies(
            response, session_token=result.token, device_token=result.device_token, persistent=False
        )
        return response

    async def logout(self, request: Request) -> Response | bool:
        token = request.cookies.get(settings.SESSION_COOKIE_NAME)
        if request.method in SAFE_METHODS:
            return await self._page(request, "admin/logout.html", {"message": "Sign out?"}, 200)
        if not await csrf_passes(request, token):
            return await self._page(
                request, "sqladmin/error.html", {"status_code": 403, "message": CSRF_REFUSED}, 403
            )
        async with get_sessionmaker()() as db:
            await AuthService().logout(token=token, db=db, audit=admin_audit(request))
        response = RedirectResponse(request.url_for("admin:login"), status_code=303)
        clear_session_cookie(response)
        set_csrf_cookie(response, None)
        return response
