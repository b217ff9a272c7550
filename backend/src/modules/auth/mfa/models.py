"""MFA rows: an account's TOTP secret (encrypted at rest) and its recovery codes (keyed hashes).

Whether MFA is on is `users.mfa_enabled` (login reads that row anyway); these rows exist from
enrollment on and are deleted when MFA is disabled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from src.infrastructure.database.models import Base, utcnow


class MfaCredential(Base):
    """An account's TOTP authenticator, from enrollment on (enabled once confirmed)."""

    __tablename__ = "mfa_credentials"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # The base32 secret, AES-GCM encrypted with a key derived from SECRET_KEY and bound to the
    # user id (`src.infrastructure.auth.encryption`): it must be read back to check codes, so
    # it cannot be hashed.
    secret_ciphertext: Mapped[str] = mapped_column(String(255))
    # The TOTP time step of the last accepted code: a code of this step or an earlier one is
    # refused, so a code works once even inside its validity window.
    last_used_step: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MfaRecoveryCode(Base):
    """One single-use recovery code; only its keyed hash (bound to the account) is stored."""

    __tablename__ = "mfa_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
