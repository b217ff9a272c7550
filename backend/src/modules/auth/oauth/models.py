from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.infrastructure.database.models import Base, utcnow


class OAuthAccount(Base):
    """An identity at an OAuth provider linked to a user: whoever proves it at the provider
    signs in as that user.

    One identity per (provider, subject), and at most one identity per provider per user.
    `email` is the address the provider vouched for when the link was made (for support and
    audit; the user's current address lives in `users`).
    """

    __tablename__ = "oauth_accounts"
    __table_args__ = (
        UniqueConstraint("provider", "subject"),
        # Its leading column also serves the lookups and the cascade by user.
        UniqueConstraint("user_id", "provider"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    # The provider's stable id for the account (OIDC `sub`, GitHub's numeric user id).
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthUsedState(Base):
    """The OAuth `state` of a sign-in that came back: each is accepted once. Only its keyed
    hash is kept, until the flow it belonged to would have expired anyway."""

    __tablename__ = "oauth_used_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
