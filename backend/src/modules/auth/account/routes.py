"""`/api/v1/auth`: the account lifecycle (verify an email, reset or change a password, change
the email). Request routes answer 202 whether or not an account exists.

Every email these routes cause is written to the task outbox in the transaction of the change
(`AccountService`), so none is lost to a broker that does not answer."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.account.schemas import (
    Accepted,
    Done,
    EmailChangeRequest,
    EmailRequest,
    PasswordChange,
    PasswordResetConfirm,
    TokenConfirm,
)
from src.modules.auth.account.service import AccountService
from src.modules.auth.dependencies import CurrentSession
from src.modules.auth.throttle import email_request_throttle
from src.modules.common.schemas import responses

BAD_LINK = responses(400, e400="The link is invalid, was already used or has expired")

router = APIRouter(tags=["auth"])

SENT = "If an account uses this address, an email is on its way"


@router.post("/email/verify-request", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
async def request_verification(
    payload: EmailRequest, request: Request, db: DBSession
) -> dict[str, str]:
    """Email a new verification link to this address, if an unverified account uses it.
    Same answer either way; limited per address and per client IP (429 + `Retry-After`)."""
    await email_request_throttle.hit(
        kind="email/verify-request", email=payload.email, ip=client_ip(request)
    )
    await AccountService().request_link(kind="verify", email=payload.email, db=db)
    return {"detail": SENT}


@router.post("/email/verify-confirm", response_model=Done, responses=BAD_LINK)
async def confirm_verification(
    payload: TokenConfirm, db: DBSession, audit: Audit
) -> dict[str, str]:
    """Mark the account's email as verified (400 for an invalid, used or expired link)."""
    await AccountService().confirm_email(token=payload.token, db=db, audit=audit)
    return {"detail": "Your email address is verified"}


@router.post(
    "/password/reset-request", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED
)
async def request_password_reset(
    payload: EmailRequest, request: Request, db: DBSession
) -> dict[str, str]:
    """Email a reset link to this address, if an account uses it. Same answer either way;
    limited per address and per client IP (429 + `Retry-After`)."""
    await email_request_throttle.hit(
        kind="password/reset-request", email=payload.email, ip=client_ip(request)
    )
    await AccountService().request_link(kind="reset", email=payload.email, db=db)
    return {"detail": SENT}


@router.post("/password/reset-confirm", response_model=Done, responses=BAD_LINK)
async def confirm_password_reset(
    payload: PasswordResetConfirm, db: DBSession, audit: Audit
) -> dict[str, str]:
    """Set a new password with a reset link: every session of the account ends (sign in
    again); the account's address is told. 400 for an invalid, used or expired link."""
    await AccountService().reset_password(
        token=payload.token, new_password=payload.new_password, db=db, audit=audit
    )
    return {"detail": "Your password was changed: sign in with the new one"}


@router.post(
    "/change-password",
    response_model=Done,
    responses=responses(400, e400="The current password is wrong"),
)
async def change_password(
    payload: PasswordChange,
    context: CurrentSession,
    request: Request,
    db: DBSession,
    audit: Audit,
) -> dict[str, str]:
    """Change your password (needs the current one; 400 when it is wrong, throttled). Your
    other sessions end; this one stays. The account's address is told."""
    await AccountService().change_password(
        principal=context.principal,
        session_id=context.session_id,
        current_password=payload.current_password,
        new_password=payload.new_password,
        ip_address=client_ip(request),
        db=db,
        audit=audit,
    )
    return {"detail": "Your password was changed"}


@router.post(
    "/email/change-request",
    response_model=Accepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(400, e400="The password is wrong, or this is already your address"),
)
async def request_email_change(
    payload: EmailChangeRequest,
    context: CurrentSession,
    request: Request,
    db: DBSession,
    audit: Audit,
) -> dict[str, str]:
    """Ask to move your account to `new_email` (needs your password): a confirmation link
    goes to the new address; nothing changes until it is followed. If an account already uses
    that address, it gets a notice instead, and the answer is the same. Limited per target
    address and per client IP, like every route that sends a link (429 + `Retry-After`)."""
    await email_request_throttle.hit(
        kind="email/change-request", email=payload.new_email, ip=client_ip(request)
    )
    await AccountService().request_email_change(
        principal=context.principal,
        session_id=context.session_id,
        new_email=payload.new_email,
        password=payload.password,
        ip_address=client_ip(request),
        db=db,
        audit=audit,
    )
    return {"detail": f"An email was sent to {payload.new_email}: follow its link to confirm"}


@router.post(
    "/email/change-confirm",
    response_model=Done,
    responses=BAD_LINK | responses(409, e409="Another account took the address meanwhile"),
)
async def confirm_email_change(
    payload: TokenConfirm, db: DBSession, audit: Audit
) -> dict[str, str]:
    """Switch the account to the address the link was sent to (now verified); the old
    address is told. 400 for an invalid, used or expired link; 409 if the address was taken
    meanwhile."""
    await AccountService().confirm_email_change(token=payload.token, db=db, audit=audit)
    return {"detail": "Your email address was changed"}
