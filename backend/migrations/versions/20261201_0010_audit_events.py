"""audit_events: the security audit log (no foreign keys: events outlive what they name).

Revision ID: 0010_audit_events
Revises: 0009_api_keys
Create Date: 2026-12-01 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.infrastructure.database.models import UTCDateTime

revision: str = "0010_audit_events"
down_revision: str | None = "0009_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_user_id", sa.Integer(), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_audit_events_kind_created_at", ["kind", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_actor_id_created_at", ["actor_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_target_user_id_created_at",
            ["target_user_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_events_target_created_at",
            ["target_type", "target_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_target_created_at")
        batch_op.drop_index("ix_audit_events_target_user_id_created_at")
        batch_op.drop_index("ix_audit_events_actor_id_created_at")
        batch_op.drop_index("ix_audit_events_kind_created_at")
        batch_op.drop_index("ix_audit_events_created_at")
    op.drop_table("audit_events")
