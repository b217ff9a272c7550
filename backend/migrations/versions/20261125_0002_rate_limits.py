"""rate limits: per tier and route rules (rate_limits).

Revision ID: 0002_rate_limits
Revises: 0001
Create Date: 2026-11-25 20:43:30.828765
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import src.infrastructure.database.models

revision: str = "0002_rate_limits"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("max_requests", sa.Integer(), nullable=False),
        sa.Column("period_seconds", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            src.infrastructure.database.models.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            src.infrastructure.database.models.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["tier_id"],
            ["tiers.id"],
            name=op.f("fk_rate_limits_tier_id_tiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limits")),
        sa.UniqueConstraint("tier_id", "path", name="uq_rate_limits_tier_id_path"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
