"""`/api/v1/auth/oauth`: sign in with an OAuth provider (mounted only when one is configured).

- `GET /auth/oauth/{provider}?redirect_to=/path&remember_me=true`: 303 to the provider, with
  the flow cookie. `redirect_to` must be a path on this origin ("/" then neither "/" nor "\\");
  anything else becomes "/".
- `GET /auth/oauth/{provider}/callback`: where the provider sends the browser back. Success:
  303 to `FRONTEND_URL` + `redirect_to` with the session, CSRF and device cookies set. Any
  failure: 303 to `FRONTEND_URL/login?error=<code>` (codes: `service.Failure`), nothing set.
  Either way the flow cookie is cleared.

An unknown or unconfigured provider is a 404 on both.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.auth.cookies import (
    OAUTH_FLOW_COOKIE_NAME,
    clear_oauth_flow_cookie,
    set_csrf_cookie,
    set_device_cookie,
    set_mfa_pending_cookie,
    set_oauth_flow_cookie,
    set_session_cookie,
)
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession, writes_on_get
from src.modules.audit.dependencies import Audit
from src.modules.auth.oauth.providers import Provider, configured_providers
from src.modules.auth.oauth.service import (
    FLOW_TTL_SECONDS,
    Caller,
    Failure,
    OAuthService,
    OAuthSignInError,
)
from src.modules.auth.service import MfaRequired
from src.modules.common.exceptions import DomainError, ResourceNotFoundError
from src.modules.common.schemas import error_response

logger = logging.getLogger("src.auth.oauth")

router = APIRouter(prefix="/oauth", tags=["auth"])

CALLBACK_ROUTE = "oauth_callback"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_303_SEE_OTHER: {"description": "Redirect (see the description)"},
    status.HTTP_404_NOT_FOUND: error_response(404, "No such provider is configured"),
}


def _provider(name: str) -> Provider:
    provider = configured_providers().get(name)
    if provider is None:
        raise ResourceNotFoundError("No such OAuth provider")
    return provider


def _callback_url(request: Request, provider: str) -> str:
    """The redirect URI registered with the provider: this app's callback route, on
    `OAUTH_REDIRECT_BASE_URL` when set (behind a proxy), else on the request's own origin."""
    url = request.url_for(CALLBACK_ROUTE, provider=provider)
    base = settings.OAUTH_REDIRECT_BASE_URL
    return f"{base.rstrip('/')}{url.path}" if base else str(url)


def _frontend(path: str) -> str:
    return settings.FRONTEND_URL.rstrip("/") + path


@router.get(
    "/{provider}",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses=_RESPONSES,
)
async def oauth_start(
    provider: str, request: Request, redirect_to: str | None = None, remember_me: bool = False
) -> RedirectResponse:
    """Sign in with `provider` (`google`, `github`): redirects the browser to it.

    After the sign-in the browser lands on `FRONTEND_URL` + `redirect_to` (a path on that
    origin; anything else falls back to "/"), or on `FRONTEND_URL/login?error=<code>`.
    `remember_me` keeps the session cookie after the browser closes, as on password login.
    """
    chosen = _provider(provider)
    started = await OAuthService().start(
        chosen,
        redirect_uri=_callback_url(request, chosen.name),
        redirect_to=redirect_to,
        remember_me=remember_me,
    )
    response = RedirectResponse(started.authorization_url, status_code=status.HTTP_303_SEE_OTHER)
    set_oauth_flow_cookie(response, started.flow_cookie, max_age=FLOW_TTL_SECONDS)
    return response


@router.get(
    "/{provider}/callback",
    name=CALLBACK_ROUTE,
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses=_RESPONSES,
)
@writes_on_get  # the provider sends the browser back with a GET that signs it in
async def oauth_callback(
    provider: str,
    request: Request,
    db: DBSession,
    audit: Audit,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    """Where the provider sends the browser back; redirects it to the frontend, signed in or
    with `/login?error=<code>`."""
    chosen = _provider(provider)
    try:
        done = await OAuthService().complete(
            db,
            chosen,
            state=state,
            code=code,
            error=error,
            flow_cookie=request.cookies.get(OAUTH_FLOW_COOKIE_NAME),
            redirect_uri=_callback_url(request, chosen.name),
            caller=Caller(
                ip_address=client_ip(request),
                user_agent=request.headers.get("user-agent"),
                session_token=request.cookies.get(settings.SESSION_COOKIE_NAME),
                device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
                audit=audit,
            ),
        )
    except (OAuthSignInError, DomainError) as refused:
        # A browser on a redirect flow lands on the login page either way, never on JSON.
        code = refused.code if isinstance(refused, OAuthSignInError) else Failure.SIGN_IN_FAILED
        logger.info("oauth sign-in through %s refused: %s", chosen.name, code)
        response = RedirectResponse(
            _frontend(f"/login?error={code}"), status_code=status.HTTP_303_SEE_OTHER
        )
    else:
        if isinstance(done.login, MfaRequired):
            # The account has MFA on: the frontend asks for the code and posts it to
            # /api/v1/auth/mfa/verify, which the pending cookie set here authorises.
            target = _frontend(f"/login?mfa_required=1&redirect_to={quote(done.redirect_to)}")
            response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
            set_mfa_pending_cookie(response, done.login.pending_token)
        else:
            response = RedirectResponse(
                _frontend(done.redirect_to), status_code=status.HTTP_303_SEE_OTHER
            )
            set_session_cookie(response, done.login.token, persistent=done.remember_me)
            set_csrf_cookie(response, done.login.token)
            set_device_cookie(response, done.login.device_token)
    clear_oauth_flow_cookie(response)
    return response
