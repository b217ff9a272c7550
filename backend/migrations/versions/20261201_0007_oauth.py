"""oauth_accounts (identities at OAuth providers linked to users) and oauth_used_states (the
single-use record of OAuth sign-in states).

Revision ID: 0007_oauth
Revises: 0006_mfa
Create Date: 2026-12-01 03:31:46.450537
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from src.infrastructure.database.models import UTCDateTime

revision: str = "0007_oauth"
down_revision: str | None = "0006_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_oauth_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_accounts")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_oauth_accounts_provider")),
        sa.UniqueConstraint("user_id", "provider", name=op.f("uq_oauth_accounts_user_id")),
    )
    op.create_table(
        "oauth_used_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_oauth_used_states")),
    )
    with op.batch_alter_table("oauth_used_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_used_states_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_used_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_used_states_expires_at"))
    op.drop_table("oauth_used_states")
    op.drop_table("oauth_accounts")
