"""`/api/v1/auth`: login, logout, the current principal, the caller's sessions, MFA
(`/api/v1/auth/mfa`, `mfa/routes.py`), the account lifecycle (`account/routes.py`), and
`/auth/oauth/...` (`oauth/routes.py`) when an OAuth provider is configured (`api_router`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.auth.cookies import (
    clear_session_cookie,
    set_csrf_cookie,
    set_mfa_pending_cookie,
    set_sign_in_cookies,
)
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.account.routes import router as account_router
from src.modules.auth.dependencies import CurrentSession, OptionalSession, refuse_api_key
from src.modules.auth.mfa.routes import router as mfa_router
from src.modules.auth.oauth.providers import configured_providers
from src.modules.auth.oauth.routes import router as oauth_router
from src.modules.auth.schemas import (
    LoginRequest,
    LoginResponse,
    MfaRequiredResponse,
    SessionRead,
    WhoAmI,
)
from src.modules.auth.service import AuthService, MfaRequired
from src.modules.common.exceptions import DomainError, ForbiddenError
from src.modules.common.schemas import responses

router = APIRouter(prefix="/auth", tags=["auth"])
router.include_router(account_router)
router.include_router(mfa_router)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


async def login_credentials(request: Request) -> LoginRequest:
    """Read `{username, password}` from a JSON body or a form (the OpenAPI Authorize button)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == JSON:
            return LoginRequest.model_validate_json(await request.body())
        if content_type in (FORM, "multipart/form-data"):
            form = await request.form()
            fields = ("username", "password", "remember_me")
            return LoginRequest.model_validate(
                {name: form[name] for name in fields if form.get(name) is not None}
            )
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc
    raise UnsupportedMediaTypeError(f"Send the credentials as {JSON} or {FORM}")


class UnsupportedMediaTypeError(DomainError):
    status_code = 415


_login_body = LoginRequest.model_json_schema()


@router.post(
    "/login",
    response_model=LoginResponse | MfaRequiredResponse,
    responses=responses(
        401,
        403,
        415,
        e401="Wrong username or password",
        e403="A cross-site request",
        e415="The body is neither JSON nor a form",
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": _login_body}, FORM: {"schema": _login_body}},
        }
    },
)
async def login(
    request: Request,
    response: Response,
    credentials: Annotated[LoginRequest, Depends(login_credentials)],
    db: DBSession,
    audit: Audit,
) -> dict[str, object]:
    """Sign in with username (or email) and password.

    Sets the HttpOnly session cookie (kept after the browser closes only with `remember_me`),
    a fresh `csrf_token` cookie bound to the new session and the signed device cookie the login
    throttle trusts. For an account with MFA on, answers `{"mfa_required": true}` instead and
    sets only the pending sign-in cookie (HttpOnly, `MFA_PENDING_TTL_SECONDS`): no session
    until `POST /auth/mfa/verify` gets a code (send `remember_me` there).
    Refused for cross-site requests (`Sec-Fetch-Site: cross-site`).
    429 + `Retry-After` while the account, the client IP or this browser has failed too often;
    503 + `Retry-After` while the throttle's storage is down (whatever the password).
    """
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise ForbiddenError("Cross-site login requests are refused")
    result = await AuthService().login(
        identifier=credentials.username,
        password=credentials.password,
        db=db,
        audit=audit,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        previous_token=request.cookies.get(settings.SESSION_COOKIE_NAME),
        device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
    )
    if isinstance(result, MfaRequired):
        set_mfa_pending_cookie(response, result.pending_token)
        return {"mfa_required": True}
    set_sign_in_cookies(
        response,
        session_token=result.token,
        device_token=result.device_token,
        persistent=credentials.remember_me,
    )
    return {"user": result.principal.profile(), "session_expires_at": result.expires_at}


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(refuse_api_key)],
)
async def logout(request: Request, response: Response, db: DBSession, audit: Audit) -> None:
    """End this browser's session on the server and clear the cookie. Needs no CSRF header.
    Session-only: 401 for an API key (revoke a key through `/api/v1/api-keys`)."""
    await AuthService().logout(
        token=request.cookies.get(settings.SESSION_COOKIE_NAME), db=db, audit=audit
    )
    clear_session_cookie(response)
    set_csrf_cookie(response, None)


@router.get("/me", response_model=WhoAmI)
async def me(context: OptionalSession) -> dict[str, object]:
    """The current principal; anonymous callers get `authenticated: false`. A safe endpoint."""
    if context is None:
        return {"authenticated": False}
    return {
        "authenticated": True,
        "user": context.principal.profile(),
        "session_id": context.session_id or None,  # None through an API key
        "via": context.principal.via,
    }


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(
    context: CurrentSession, response: Response, db: DBSession, audit: Audit
) -> None:
    """End every session of the current user, this one included."""
    await AuthService().logout_all(user_id=context.principal.id, db=db, audit=audit)
    clear_session_cookie(response)
    set_csrf_cookie(response, None)


@router.get("/sessions", response_model=list[SessionRead])
async def list_sessions(context: CurrentSession, db: DBSession) -> list[dict[str, object]]:
    """The current user's live sessions, most recently used first."""
    return await AuthService().list_sessions(
        user_id=context.principal.id, current_session_id=context.session_id, db=db
    )


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: str, context: CurrentSession, response: Response, db: DBSession, audit: Audit
) -> None:
    """End one of the current user's sessions (404 for anyone else's)."""
    await AuthService().revoke_session(
        session_id=session_id, user_id=context.principal.id, db=db, audit=audit
    )
    if session_id == context.session_id:
        clear_session_cookie(response)
        set_csrf_cookie(response, None)


def api_router() -> APIRouter:
    """`/auth` as the app mounts it: the routes above, plus the OAuth sign-in routes when at
    least one provider is configured. Read when the app is built: an app built without a
    provider has no OAuth route at all (404, not a refusal)."""
    if not configured_providers():
        return router
    mounted = APIRouter()
    mounted.include_router(router)
    mounted.include_router(oauth_router, prefix=router.prefix)
    return mounted
