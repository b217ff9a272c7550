"""`/api/v1/auth/mfa`: the caller's MFA (status, enroll, confirm, disable, new recovery codes)
and the second step of an MFA sign-in (`verify`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.auth.cookies import clear_mfa_pending_cookie, set_sign_in_cookies
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.dependencies import CurrentSession
from src.modules.auth.mfa.schemas import (
    MfaCodeRequest,
    MfaDisableRequest,
    MfaEnrollment,
    MfaEnrollRequest,
    MfaStatus,
    MfaVerifyRequest,
    RecoveryCodes,
)
from src.modules.auth.mfa.service import MfaService
from src.modules.auth.schemas import LoginResponse
from src.modules.auth.service import MFA_PENDING_EXPIRED, AuthService
from src.modules.common.exceptions import ForbiddenError, NotAuthenticatedError
from src.modules.common.schemas import responses

router = APIRouter(prefix="/mfa", tags=["auth"])


@router.get("", response_model=MfaStatus)
async def mfa_status(context: CurrentSession, db: DBSession) -> dict[str, object]:
    """Whether MFA is on for the current user, and how many recovery codes are left."""
    return await MfaService().status(user_id=context.principal.id, db=db)


NO_STORE = {"Cache-Control": "no-store"}  # secrets and codes: no cache may keep them


@router.post(
    "/enroll",
    response_model=MfaEnrollment,
    responses=responses(400, 409, e400="The password is incorrect", e409="MFA is on already"),
)
async def enroll(
    payload: MfaEnrollRequest,
    request: Request,
    response: Response,
    context: CurrentSession,
    db: DBSession,
) -> dict[str, str]:
    """Start enrolling an authenticator (needs your password: 400 when wrong, counted as a
    failed login): a new TOTP secret and its `otpauth://` URI (render it as a QR code), shown
    this once. MFA is off until `POST /auth/mfa/confirm`; enrolling again before that replaces
    the secret. 409 while MFA is on (disable it first)."""
    response.headers.update(NO_STORE)
    return await MfaService().enroll(
        principal=context.principal,
        password=payload.password,
        db=db,
        ip_address=client_ip(request),
        device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
    )


@router.post(
    "/confirm",
    response_model=RecoveryCodes,
    responses=responses(
        400, 409, e400="The code is wrong", e409="MFA is on already, or not enrolled"
    ),
)
async def confirm(
    payload: MfaCodeRequest,
    response: Response,
    context: CurrentSession,
    db: DBSession,
    audit: Audit,
) -> dict[str, list[str]]:
    """Turn MFA on with a current code from the enrolled authenticator (400 if wrong). Returns
    10 single-use recovery codes, shown this once. The user's other sessions end; the
    account's address is told."""
    response.headers.update(NO_STORE)
    codes = await MfaService().confirm(
        principal=context.principal,
        code=payload.code,
        session_id=context.session_id,
        db=db,
        audit=audit,
    )
    return {"recovery_codes": codes}


@router.post(
    "/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(400, 409, e400="The password or the code is wrong", e409="MFA is off"),
)
async def disable(
    payload: MfaDisableRequest,
    request: Request,
    context: CurrentSession,
    db: DBSession,
    audit: Audit,
) -> None:
    """Turn MFA off: needs the password and a code (TOTP or recovery; 400 if either is wrong,
    counted as a failed login). The secret and the recovery codes are deleted; the account's
    address is told."""
    await MfaService().disable(
        principal=context.principal,
        password=payload.password,
        code=payload.code,
        db=db,
        audit=audit,
        ip_address=client_ip(request),
        device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
    )


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodes,
    responses=responses(400, 409, e400="The code is wrong", e409="MFA is off"),
)
async def regenerate_recovery_codes(
    payload: MfaCodeRequest,
    request: Request,
    response: Response,
    context: CurrentSession,
    db: DBSession,
    audit: Audit,
) -> dict[str, list[str]]:
    """New recovery codes (proven with a TOTP or recovery code): the old ones stop working.
    The account's address is told."""
    response.headers.update(NO_STORE)
    codes = await MfaService().regenerate_recovery_codes(
        principal=context.principal,
        code=payload.code,
        db=db,
        audit=audit,
        ip_address=client_ip(request),
        device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
    )
    return {"recovery_codes": codes}


@router.post(
    "/verify",
    response_model=LoginResponse,
    responses=responses(
        401,
        403,
        e401="A wrong code, or no pending sign-in (log in again)",
        e403="A cross-site request",
    ),
)
async def verify(
    payload: MfaVerifyRequest, request: Request, response: Response, db: DBSession, audit: Audit
) -> dict[str, object]:
    """Second step of an MFA sign-in: the code (TOTP or recovery) for the pending sign-in that
    `POST /auth/login` started (its cookie). Answers like a login: the session, CSRF and device
    cookies and the same body. A wrong code is a 401 and the pending sign-in stays usable,
    but wrong codes count as failed logins (429 + `Retry-After` while throttled); a missing,
    used or expired pending sign-in is a 401 too (log in again). Refused for cross-site
    requests (`Sec-Fetch-Site: cross-site`)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise ForbiddenError("Cross-site sign-in requests are refused")
    pending = request.cookies.get(settings.MFA_PENDING_COOKIE_NAME)
    if not pending:
        raise NotAuthenticatedError(MFA_PENDING_EXPIRED)
    result = await AuthService().complete_mfa_sign_in(
        pending_token=pending,
        code=payload.code,
        db=db,
        audit=audit,
        ip_address=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        previous_token=request.cookies.get(settings.SESSION_COOKIE_NAME),
        device_token=request.cookies.get(settings.DEVICE_COOKIE_NAME),
    )
    set_sign_in_cookies(
        response,
        session_token=result.token,
        device_token=result.device_token,
        persistent=payload.remember_me,
    )
    clear_mfa_pending_cookie(response)
    return {"user": result.principal.profile(), "session_expires_at": result.expires_at}
