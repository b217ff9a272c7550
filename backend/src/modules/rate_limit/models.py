from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.infrastructure.database.models import Base, TimestampMixin


class RateLimit(TimestampMixin, Base):
    """`max_requests` per `period_seconds` for the users of one tier on one route.

    `path` is a route template exactly as declared (`/api/v1/users/{username}`), or `*` for
    every route of the tier that has no rule of its own.
    """

    __tablename__ = "rate_limits"
    __table_args__ = (UniqueConstraint("tier_id", "path", name="uq_rate_limits_tier_id_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(255))
    max_requests: Mapped[int]
    period_seconds: Mapped[int]
