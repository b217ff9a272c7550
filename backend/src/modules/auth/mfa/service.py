"""MFA with TOTP (RFC 6238, through `pyotp`): enroll, confirm, check a code, recovery codes,
disable.

What is stored, and how:

- The TOTP secret is needed to check every code, so it cannot be hashed: it is stored
  **encrypted at rest**, AES-256-GCM under a key derived from SECRET_KEY (HKDF-SHA256, a key of
  its own for this purpose) and bound to the user id as associated data
  (`src.infrastructure.auth.encryption`). It leaves the server once, in the enroll response,
  and is never logged. Changing SECRET_KEY makes it unreadable (the account's codes then fail).
- 10 recovery codes, shown once (when MFA is confirmed, or when they are regenerated), stored
  only as HMAC-SHA256(SECRET_KEY, user id, code) (`hash_recovery_code`); using one deletes it.
- Whether MFA is on is `users.mfa_enabled`: login reads that row anyway, so neither login nor
  the per-request session lookup (`Principal`) queries these tables.

Codes: a TOTP code is accepted one 30-second step either side of now (`valid_window=1`) and
only once: the credential row keeps the step of the last accepted code, and a code whose step
is not later is refused. That check-and-set is one conditional UPDATE (and using a recovery
code one DELETE), so two concurrent uses of one code cannot both pass. Codes are never logged
and never echoed (the 422 handler drops inputs).

State changes of one account's MFA (enroll, confirm, disable, regenerate) lock its `users` row
first (Postgres; SQLite's writers are serialised anyway), so they cannot interleave. Wrong
codes (and passwords) where a factor is proven again count in the login throttle.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pyotp
from pyotp.exceptions import OTPVerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.encryption import decrypt, encrypt
from src.infrastructure.auth.passwords import verify_password
from src.infrastructure.auth.tokens import hash_recovery_code
from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.taskiq import outbox
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind
from src.modules.audit.service import Target, record
from src.modules.auth.account.tasks import (
    MFA_DISABLED,
    MFA_ENABLED,
    RECOVERY_CODES,
    send_security_notice,
)
from src.modules.auth.mfa.models import MfaCredential, MfaRecoveryCode
from src.modules.auth.sessions import Principal, end_sessions
from src.modules.auth.throttle import Attempt, attempt_for_account, login_throttle
from src.modules.common.exceptions import BadRequestError, ConflictError, DomainError
from src.modules.common.transactions import commit_or_conflict
from src.modules.user.models import User

logger = logging.getLogger("src.auth.mfa")

ENCRYPTION_PURPOSE = "mfa-totp-secret"
VALID_WINDOW = 1  # steps either side of now
RECOVERY_CODE_COUNT = 10
# 32 symbols (no 0/o, 1/l): 10 of them are 50 bits, shown as xxxxx-xxxxx.
RECOVERY_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10

ALREADY_ENABLED = "MFA is already enabled: disable it first to enroll a new authenticator"
NOT_ENROLLED = "No authenticator to confirm: start with POST /auth/mfa/enroll"
NOT_ENABLED = "MFA is not enabled"
INVALID_CODE = "Invalid code"
INVALID_PASSWORD = "The password is incorrect"  # noqa: S105 - a message
INVALID_PASSWORD_OR_CODE = "Incorrect password or code"  # noqa: S105 - a message
ENROLLING = "Another MFA change for this account is in progress, try again"


def normalise_code(code: str) -> str:
    """The one form a code is checked in: no white space or hyphens, lower case."""
    return "".join(code.split()).replace("-", "").lower()


def is_totp_code(code: str) -> bool:
    """A normalised code of 6 digits is a TOTP code; anything else can only be a recovery code."""
    return len(code) == 6 and code.isascii() and code.isdigit()


def is_recovery_code(code: str) -> bool:
    """Whether `code` (as typed) would be checked as a recovery code rather than TOTP."""
    return not is_totp_code(normalise_code(code))


def new_recovery_codes() -> list[str]:
    """`RECOVERY_CODE_COUNT` distinct fresh codes, each `xxxxx-xxxxx`."""
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.add(f"{raw[:5]}-{raw[5:]}")
    return sorted(codes)


def _context(user_id: int) -> str:
    return f"user:{user_id}"


def encrypt_secret(user_id: int, secret: str) -> str:
    return encrypt(secret, purpose=ENCRYPTION_PURPOSE, context=_context(user_id))


def decrypt_secret(user_id: int, stored: str) -> str | None:
    secret = decrypt(stored, purpose=ENCRYPTION_PURPOSE, context=_context(user_id))
    if secret is None:
        # The id only: neither the ciphertext nor anything derived from the secret.
        logger.warning(
            "the MFA secret of user %s cannot be decrypted (SECRET_KEY changed?)", user_id
        )
    return secret


def totp_step(secret: str, code: str) -> int | None:
    """The time step `code` (normalised) belongs to, if it is within the window around now."""
    if not is_totp_code(code):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(
            code, for_time=utcnow(), valid_window=VALID_WINDOW
        )
    except OTPVerificationError:
        return None


async def use_code(db: AsyncSession, *, user_id: int, code: str) -> bool:
    """Check a code of an account with MFA on and use it up, in the caller's transaction (the
    caller commits): a TOTP code later than the last accepted one, or an unused recovery code.
    Writes nothing when it answers False."""
    code = normalise_code(code)
    if is_totp_code(code):
        stored = await db.scalar(
            select(MfaCredential.secret_ciphertext)
            .join(User, User.id == MfaCredential.user_id)
            .where(MfaCredential.user_id == user_id, User.mfa_enabled.is_(True))
        )
        secret = decrypt_secret(user_id, stored) if stored is not None else None
        step = totp_step(secret, code) if secret is not None else None
        if step is None:
            return False
        result = await db.execute(
            update(MfaCredential)
            .where(
                MfaCredential.user_id == user_id,
                or_(MfaCredential.last_used_step.is_(None), MfaCredential.last_used_step < step),
            )
            .values(last_used_step=step)
        )
    else:
        result = await db.execute(
            delete(MfaRecoveryCode).where(
                MfaRecoveryCode.user_id == user_id,
                MfaRecoveryCode.code_hash == hash_recovery_code(user_id, code),
            )
        )
    return bool(getattr(result, "rowcount", 0) == 1)


async def prove(
    db: AsyncSession,
    attempt: Attempt,
    proof: Callable[[], Awaitable[bool]],
    error: DomainError,
) -> None:
    """`login_throttle.guard` around a proof that uses a code up (`use_code`): should anything
    after the proof fail (the throttle's storage, say), the code's use is rolled back with it,
    so a request that opened nothing never burns a code."""
    try:
        await login_throttle.guard(attempt, proof, error)
    except Exception:
        await db.rollback()
        raise


async def _replace_recovery_codes(db: AsyncSession, user_id: int) -> list[str]:
    codes = new_recovery_codes()
    await db.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))
    db.add_all(
        MfaRecoveryCode(user_id=user_id, code_hash=hash_recovery_code(user_id, normalise_code(c)))
        for c in codes
    )
    await db.flush()
    return codes


async def lock_account(db: AsyncSession, user_id: int) -> bool:
    """Lock the account's `users` row for this transaction; return whether MFA is on.

    `FOR NO KEY UPDATE` on Postgres: it serialises MFA changes of one account but not the
    foreign-key checks of a sign-in inserting its session meanwhile (a plain `FOR UPDATE`
    would, and a verification holding the credential row could deadlock against it)."""
    enabled = await db.scalar(
        select(User.mfa_enabled).where(User.id == user_id).with_for_update(key_share=True)
    )
    return bool(enabled)


async def remove_mfa(db: AsyncSession, *, user_id: int) -> None:
    """Delete the account's secret and recovery codes (the caller sets `mfa_enabled` and
    commits)."""
    await db.execute(delete(MfaCredential).where(MfaCredential.user_id == user_id))
    await db.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id))


def _recovery_code_used(
    db: AsyncSession, audit: AuditContext, user_id: int, code: str, *, during: str
) -> None:
    """Audit the use of a recovery code (`code` was just accepted by `use_code`)."""
    if is_recovery_code(code):
        record(
            db,
            AuditKind.MFA_RECOVERY_CODE_USED,
            audit,
            target=Target.user(user_id),
            data={"during": during},
        )


class MfaService:
    async def status(self, *, user_id: int, db: AsyncSession) -> dict[str, Any]:
        enabled = bool(await db.scalar(select(User.mfa_enabled).where(User.id == user_id)))
        left: int | None = 0
        if enabled:
            left = await db.scalar(
                select(func.count())
                .select_from(MfaRecoveryCode)
                .where(MfaRecoveryCode.user_id == user_id)
            )
        return {"enabled": enabled, "recovery_codes_left": int(left or 0)}

    async def enroll(
        self,
        *,
        principal: Principal,
        password: str,
        db: AsyncSession,
        ip_address: str | None = None,
        device_token: str | None = None,
    ) -> dict[str, str]:
        """A new secret for the caller (replacing an unconfirmed one); MFA stays off until
        `confirm`. Needs the password (throttled like a login): a stolen session alone must
        not be able to put the account behind the thief's authenticator. 409 while MFA is
        on."""
        hashed_password = await db.scalar(
            select(User.hashed_password).where(User.id == principal.id)
        )
        await db.commit()  # no connection held while the throttle is asked and the hash runs

        async def proof() -> bool:
            valid, _ = await verify_password(password, hashed_password)
            return valid

        attempt = attempt_for_account(
            user_id=principal.id, ip=ip_address, device_token=device_token
        )
        await login_throttle.guard(attempt, proof, BadRequestError(INVALID_PASSWORD))
        async with commit_or_conflict(db, ENROLLING, ConflictError):
            if await lock_account(db, principal.id):
                raise ConflictError(ALREADY_ENABLED)
            secret = pyotp.random_base32()
            await db.execute(delete(MfaCredential).where(MfaCredential.user_id == principal.id))
            db.add(
                MfaCredential(
                    user_id=principal.id,
                    secret_ciphertext=encrypt_secret(principal.id, secret),
                    created_at=utcnow(),
                )
            )
            await db.flush()
        uri = pyotp.TOTP(secret).provisioning_uri(
            name=principal.email, issuer_name=settings.APP_NAME
        )
        return {"secret": secret, "otpauth_uri": uri}

    async def confirm(
        self,
        *,
        principal: Principal,
        code: str,
        session_id: str,
        db: AsyncSession,
        audit: AuditContext,
    ) -> list[str]:
        """Turn MFA on with a first code from the enrolled authenticator: returns the recovery
        codes (the only time they exist in clear) and ends the caller's other sessions, which
        were opened with the password alone."""
        user_id = principal.id
        if await lock_account(db, user_id):
            raise ConflictError(ALREADY_ENABLED)
        stored = await db.scalar(
            select(MfaCredential.secret_ciphertext).where(MfaCredential.user_id == user_id)
        )
        secret = decrypt_secret(user_id, stored) if stored is not None else None
        if secret is None:
            raise ConflictError(NOT_ENROLLED)
        step = totp_step(secret, normalise_code(code))
        if step is None:
            raise BadRequestError(INVALID_CODE)
        await db.execute(
            update(MfaCredential)
            .where(MfaCredential.user_id == user_id)
            .values(last_used_step=step)
        )
        await db.execute(update(User).where(User.id == user_id).values(mfa_enabled=True))
        codes = await _replace_recovery_codes(db, user_id)
        await end_sessions(db, user_id=user_id, keep_session_id=session_id)
        await outbox.add(db, send_security_notice, user_id, MFA_ENABLED)
        record(db, AuditKind.MFA_ENABLED, audit, target=Target.user(user_id))
        await db.commit()
        return codes

    async def disable(
        self,
        *,
        principal: Principal,
        password: str,
        code: str,
        db: AsyncSession,
        audit: AuditContext,
        ip_address: str | None = None,
        device_token: str | None = None,
    ) -> None:
        """Turn MFA off with the password and a code (TOTP or recovery): the secret and the
        recovery codes are deleted. Wrong ones count in the login throttle."""
        user_id = principal.id
        hashed_password = await db.scalar(
            select(User.hashed_password).where(User.id == user_id, User.mfa_enabled.is_(True))
        )
        # End the read's transaction: the throttle and the password hash need no connection.
        await db.commit()
        if hashed_password is None:
            raise ConflictError(NOT_ENABLED)

        async def proof() -> bool:
            valid, _ = await verify_password(password, hashed_password)
            if not valid:
                return False  # the code is tried (and used up) only with the right password
            if not await lock_account(db, user_id):
                raise ConflictError(NOT_ENABLED)  # disabled meanwhile
            return await use_code(db, user_id=user_id, code=code)

        attempt = attempt_for_account(user_id=user_id, ip=ip_address, device_token=device_token)
        await prove(db, attempt, proof, BadRequestError(INVALID_PASSWORD_OR_CODE))
        await db.execute(update(User).where(User.id == user_id).values(mfa_enabled=False))
        await remove_mfa(db, user_id=user_id)
        await outbox.add(db, send_security_notice, user_id, MFA_DISABLED)
        _recovery_code_used(db, audit, user_id, code, during="disable")
        record(db, AuditKind.MFA_DISABLED, audit, target=Target.user(user_id))
        await db.commit()

    async def regenerate_recovery_codes(
        self,
        *,
        principal: Principal,
        code: str,
        db: AsyncSession,
        audit: AuditContext,
        ip_address: str | None = None,
        device_token: str | None = None,
    ) -> list[str]:
        """Replace the recovery codes (proven with a TOTP or recovery code): the old ones stop
        working, the new ones are returned once."""
        user_id = principal.id

        async def proof() -> bool:
            if not await lock_account(db, user_id):
                raise ConflictError(NOT_ENABLED)
            return await use_code(db, user_id=user_id, code=code)

        attempt = attempt_for_account(user_id=user_id, ip=ip_address, device_token=device_token)
        await prove(db, attempt, proof, BadRequestError(INVALID_CODE))
        codes = await _replace_recovery_codes(db, user_id)
        await outbox.add(db, send_security_notice, user_id, RECOVERY_CODES)
        _recovery_code_used(db, audit, user_id, code, during="regenerate")
        record(db, AuditKind.MFA_RECOVERY_CODES_REGENERATED, audit, target=Target.user(user_id))
        await db.commit()
        return codes
