"""Login, logout and session management on top of the session store and the login throttle.

Every way in ends in `sign_in`, which is also the MFA gate: an account with MFA on gets no
session there, only a pending sign-in (`MfaRequired`) that `complete_mfa_sign_in` finishes
with a code; both open the session through the same `_open_session`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.passwords import verify_password
from src.infrastructure.auth.tokens import new_device_token, read_device_token
from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind, LoginFailure, Outcome, TargetType
from src.modules.audit.service import Target, record
from src.modules.auth import tokens
from src.modules.auth.mfa.service import is_recovery_code, lock_account, prove, use_code
from src.modules.auth.schemas import normalise_identifier
from src.modules.auth.sessions import Principal, get_session_store
from src.modules.auth.sessions.base import PRINCIPAL_FIELDS
from src.modules.auth.throttle import Attempt, account_key, attempt_for_account, login_throttle
from src.modules.auth.tokens import Purpose
from src.modules.common.exceptions import (
    NotAuthenticatedError,
    RateLimitedError,
    ResourceNotFoundError,
)
from src.modules.user.crud import crud_users
from src.modules.user.models import User

BAD_CREDENTIALS = "Incorrect username or password"
BAD_MFA_CODE = "Invalid code"
MFA_PENDING_EXPIRED = "No pending sign-in, or it expired: log in again"


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A session was opened."""

    token: str
    principal: Principal
    expires_at: datetime
    device_token: str  # the browser's device cookie for this account (new or kept)


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """The first factor was right but the account has MFA on: no session yet. The pending
    token (single use, short-lived) goes to the browser and comes back with the code."""

    pending_token: str
    expires_at: datetime


SignInResult = LoginResult | MfaRequired


async def login_failed(
    db: AsyncSession,
    audit: AuditContext,
    reason: LoginFailure,
    *,
    user_id: int | None,
    method: str,
) -> None:
    """Record a failed sign-in and commit it alone: the request answers 401 (or 429), but the
    attempt is on record. Nothing else of the request may be pending in `db`."""
    record(
        db,
        AuditKind.LOGIN_FAILED,
        audit,
        target=Target.user(user_id) if user_id is not None else None,
        actor_id=None,
        reason=reason,
        outcome=Outcome.FAILURE,
        data={"method": method},
    )
    await db.commit()


def needs_second_factor(user: dict[str, Any]) -> bool:
    """Whether `user` (a full `users` row) must prove a second factor before a session opens.
    A row without the column is an error, never a way around the gate."""
    return bool(user["mfa_enabled"])


class AuthService:
    async def login(
        self,
        *,
        identifier: str,
        password: str,
        db: AsyncSession,
        audit: AuditContext,
        ip_address: str | None = None,
        user_agent: str | None = None,
        previous_token: str | None = None,
        device_token: str | None = None,
    ) -> SignInResult:
        """Check credentials (through the login throttle), then `sign_in`.

        Unknown and deleted users cost the same argon2 work and the same throttling as real
        ones. For an account with MFA on, the right password is not yet a success: the
        throttle's counters are cleared only once the code is right too.

        Every failure is on the audit log (committed before the refusal) with its reason; a
        deleted account fails exactly as an unknown one, but is recorded as `inactive`.
        """
        identifier = normalise_identifier(identifier)
        if "@" in identifier:
            row = await crud_users.get(db, email=identifier)
        else:
            row = await crud_users.get(db, username=identifier)
        # Nothing written yet: end the read's transaction, so its pooled connection goes back
        # while the throttle is asked and the password is hashed.
        await db.commit()
        deleted_id: int | None = None
        if row is not None and row["is_deleted"]:
            deleted_id, row = row["id"], None  # signs in as nobody
        user_id: int | None = row["id"] if row else None
        device = read_device_token(device_token)
        attempt = Attempt(
            account=account_key(user_id=user_id, identifier=identifier),
            ip=ip_address or "",
            device=device[1] if device is not None and device[0] == user_id else None,
        )
        throttled = login_throttle.enabled
        if throttled:
            try:
                await login_throttle.check(attempt)
            except RateLimitedError:
                await login_failed(
                    db,
                    audit,
                    LoginFailure.THROTTLED,
                    user_id=user_id or deleted_id,
                    method="password",
                )
                raise
        valid, new_hash = await verify_password(password, row["hashed_password"] if row else None)
        if row is None or not valid:
            if row is not None:
                reason, failed_id = LoginFailure.BAD_PASSWORD, user_id
            elif deleted_id is not None:
                reason, failed_id = LoginFailure.INACTIVE, deleted_id
            else:
                reason, failed_id = LoginFailure.UNKNOWN_ACCOUNT, None
            await login_failed(db, audit, reason, user_id=failed_id, method="password")
            if throttled:
                await login_throttle.record_failure(attempt)
            raise NotAuthenticatedError(BAD_CREDENTIALS)
        if throttled and not needs_second_factor(row):
            await login_throttle.record_success(attempt)
        if new_hash is not None:  # hash parameters changed since this password was set
            await crud_users.update(db, {"hashed_password": new_hash}, id=row["id"], commit=False)
            # The row as stored: a pending MFA sign-in is bound to the password hash.
            row = {**row, "hashed_password": new_hash}
        return await self.sign_in(
            db,
            user=row,
            audit=audit,
            method="password",
            ip_address=ip_address,
            user_agent=user_agent,
            previous_token=previous_token,
            device_token=device_token if device_token and attempt.device else None,
        )

    async def sign_in(
        self,
        db: AsyncSession,
        *,
        user: dict[str, Any],
        audit: AuditContext,
        method: str,
        ip_address: str | None = None,
        user_agent: str | None = None,
        previous_token: str | None = None,
        device_token: str | None = None,
    ) -> SignInResult:
        """Sign in a user whose identity was just proven (a password, an OAuth provider):
        every way in ends here, and commits.

        `user` is the full `users` row. With MFA on, no session opens: a pending token is
        issued (`MFA_PENDING_TTL_SECONDS`; a newer one voids it) and `MfaRequired` returned,
        for `complete_mfa_sign_in`. Otherwise the session opens (`LoginResult`).
        """
        if needs_second_factor(user):
            pending = await tokens.issue(
                db,
                user=user,
                purpose=Purpose.MFA_LOGIN,
                ttl_seconds=settings.MFA_PENDING_TTL_SECONDS,
            )
            record(
                db,
                AuditKind.LOGIN_MFA_REQUIRED,
                audit,
                target=Target.user(user["id"]),
                actor_id=user["id"],
                outcome=Outcome.PENDING,
                reason="mfa_required",
                data={"method": method},
            )
            await db.commit()
            return MfaRequired(
                pending_token=pending,
                expires_at=utcnow() + timedelta(seconds=settings.MFA_PENDING_TTL_SECONDS),
            )
        return await self._open_session(
            db,
            user=user,
            audit=audit,
            data={"method": method},
            ip_address=ip_address,
            user_agent=user_agent,
            previous_token=previous_token,
            device_token=device_token,
        )

    async def complete_mfa_sign_in(
        self,
        *,
        pending_token: str,
        code: str,
        db: AsyncSession,
        audit: AuditContext,
        ip_address: str | None = None,
        user_agent: str | None = None,
        previous_token: str | None = None,
        device_token: str | None = None,
    ) -> LoginResult:
        """Finish a sign-in `sign_in` left pending, with a TOTP or recovery code.

        The pending token is only looked at until the code is right, so a mistyped code can
        be retried; wrong codes count as failed logins of the account (429 while throttled,
        503 while the throttle's storage is down, as login). With the right code the token is
        consumed (atomically: of two concurrent verifications, one opens a session) and the
        session opens exactly as a password login's does.
        """
        pending = await tokens.peek(db, token=pending_token, purpose=Purpose.MFA_LOGIN)
        # Nothing written yet: the connection goes back while the throttle is asked.
        await db.commit()
        if pending is None:
            await login_failed(db, audit, LoginFailure.MFA_EXPIRED, user_id=None, method="mfa")
            raise NotAuthenticatedError(MFA_PENDING_EXPIRED)
        user_id: int = pending.user["id"]
        attempt = attempt_for_account(user_id=user_id, ip=ip_address, device_token=device_token)

        async def proof() -> bool:
            # The account row first, as every MFA change locks it: one lock order, so a
            # verification never deadlocks against a disable or new recovery codes.
            await lock_account(db, user_id)
            return await use_code(db, user_id=user_id, code=code)

        try:
            await prove(db, attempt, proof, NotAuthenticatedError(BAD_MFA_CODE))
        except (NotAuthenticatedError, RateLimitedError) as refused:
            # `prove` rolled the attempt back: the failure is committed alone.
            reason = (
                LoginFailure.THROTTLED
                if isinstance(refused, RateLimitedError)
                else LoginFailure.MFA_FAILED
            )
            await login_failed(db, audit, reason, user_id=user_id, method="mfa")
            raise
        redeemed = await tokens.consume(db, token=pending_token, purpose=Purpose.MFA_LOGIN)
        if redeemed is None or redeemed.user["id"] != user_id:
            # Used meanwhile by a concurrent verification, expired, or the account changed:
            # undo the use of the code (a recovery code stays valid); the token cannot pass
            # again anyway (used, expired, or its state check fails again).
            await db.rollback()
            await login_failed(db, audit, LoginFailure.MFA_EXPIRED, user_id=user_id, method="mfa")
            raise NotAuthenticatedError(MFA_PENDING_EXPIRED)
        factor = "recovery_code" if is_recovery_code(code) else "totp"
        if factor == "recovery_code":
            record(
                db,
                AuditKind.MFA_RECOVERY_CODE_USED,
                audit,
                target=Target.user(user_id),
                actor_id=user_id,
                data={"during": "sign_in"},
            )
        return await self._open_session(
            db,
            user=redeemed.user,
            audit=audit,
            data={"method": "mfa", "factor": factor},
            ip_address=ip_address,
            user_agent=user_agent,
            previous_token=previous_token,
            device_token=device_token if device_token and attempt.device else None,
        )

    async def _open_session(
        self,
        db: AsyncSession,
        *,
        user: dict[str, Any],
        audit: AuditContext,
        data: dict[str, str],
        ip_address: str | None,
        user_agent: str | None,
        previous_token: str | None,
        device_token: str | None,
    ) -> LoginResult:
        """Open a session (the identity, and any second factor, proven). Ends the client's
        previous session, so a planted session id never survives a sign-in, and commits.

        The account is read again, share-locked, in the transaction that adds the session: if
        its password changed (a reset, a change) since `user` was read, no session opens; and a
        reset that commits later waits for this transaction, then ends this session with the
        others. Without it, a login checked against the old password could finish after the
        reset and keep its session.
        """
        locked = await db.execute(
            select(User.hashed_password)
            .where(User.id == user["id"], User.is_deleted.is_(False))
            .with_for_update(read=True)
        )
        if locked.scalar_one_or_none() != user["hashed_password"]:
            await db.rollback()
            raise NotAuthenticatedError(BAD_CREDENTIALS)
        if previous_token:
            await get_session_store().delete_by_token(db, previous_token)
        token = await get_session_store().create(
            db, user_id=user["id"], ip_address=ip_address, user_agent=user_agent
        )
        record(
            db,
            AuditKind.LOGIN_SUCCEEDED,
            audit,
            target=Target.user(user["id"]),
            actor_id=user["id"],
            data=data,
        )
        await db.commit()
        return LoginResult(
            token=token,
            principal=Principal(**{name: user[name] for name in PRINCIPAL_FIELDS}),
            expires_at=utcnow() + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS),
            device_token=device_token or new_device_token(user["id"]),
        )

    async def logout(self, *, token: str | None, db: AsyncSession, audit: AuditContext) -> None:
        if token:
            ended = await get_session_store().delete_by_token(db, token)
            if ended is not None:
                session_id, user_id = ended
                record(
                    db,
                    AuditKind.LOGOUT,
                    audit,
                    target=Target.of(TargetType.SESSION, session_id, user_id=user_id),
                    actor_id=user_id,
                )
            await db.commit()

    async def logout_all(self, *, user_id: int, db: AsyncSession, audit: AuditContext) -> None:
        await get_session_store().delete_for_user(db, user_id=user_id)
        record(db, AuditKind.LOGOUT_ALL, audit, target=Target.user(user_id))
        await db.commit()

    async def list_sessions(
        self, *, user_id: int, current_session_id: str, db: AsyncSession
    ) -> list[dict[str, Any]]:
        sessions = await get_session_store().list_for_user(db, user_id=user_id)
        return [session | {"current": session["id"] == current_session_id} for session in sessions]

    async def revoke_session(
        self, *, session_id: str, user_id: int, db: AsyncSession, audit: AuditContext
    ) -> None:
        """End one of the caller's sessions; someone else's session is simply not found."""
        if not await get_session_store().delete_by_id(db, session_id=session_id, user_id=user_id):
            raise ResourceNotFoundError("Session not found")
        target = Target.of(TargetType.SESSION, session_id, user_id=user_id)
        record(db, AuditKind.SESSION_REVOKED, audit, target=target)
        await db.commit()
