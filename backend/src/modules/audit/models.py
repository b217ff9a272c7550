"""`audit_events`: one row per security event, append-only (pruned by age only).

No foreign keys: an event outlives what it names (a deleted tier, a hard-deleted row), and an
insert should cost no lookup in the tables it names. Indexed for what the read route filters
on, each with `created_at` (the order of every listing and the pruning cut-off).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from src.infrastructure.database.models import Base, utcnow

# SQLite autoincrements only an INTEGER PRIMARY KEY; Postgres gets 64 bits for a table that
# only grows.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    actor_id: Mapped[int | None] = mapped_column(default=None)
    target_type: Mapped[str | None] = mapped_column(String(32), default=None)
    target_id: Mapped[str | None] = mapped_column(String(64), default=None)
    target_user_id: Mapped[int | None] = mapped_column(default=None)
    ip: Mapped[str | None] = mapped_column(String(45), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(512), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    __table_args__ = (
        Index("ix_audit_events_created_at", "created_at"),
        Index("ix_audit_events_kind_created_at", "kind", "created_at"),
        Index("ix_audit_events_actor_id_created_at", "actor_id", "created_at"),
        Index("ix_audit_events_target_user_id_created_at", "target_user_id", "created_at"),
        Index("ix_audit_events_target_created_at", "target_type", "target_id", "created_at"),
    )
