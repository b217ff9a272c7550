from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from src.infrastructure.database.models import Base, SoftDeleteMixin, TimestampMixin


class User(TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    # Both are stored lower-cased, so the unique indexes are case-insensitive on every backend.
    username: Mapped[str] = mapped_column(String(30), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(default=False, server_default=false())
    tier_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiers.id", ondelete="RESTRICT"), default=None, index=True
    )
    # Set once the owner proved the address: the verification link, a reset link, an email
    # change confirmed from the new address, or an OAuth provider that verified it.
    is_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    # A second factor (TOTP) is on: the password alone opens no session. Kept by auth's MFA
    # (`src/modules/auth/mfa`) with its rows; here so that login, which reads this row anyway,
    # needs no other query to know.
    mfa_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Set by the welcome-email task once the email is out, so a redelivered task sends nothing.
    welcome_email_sent_at: Mapped[datetime | None] = mapped_column(default=None)
