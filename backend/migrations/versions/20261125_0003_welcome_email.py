"""users.welcome_email_sent_at: set by the welcome-email task once the email is out.

Revision ID: 0003_welcome_email
Revises: 0002_rate_limits
Create Date: 2026-11-25 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import src.infrastructure.database.models

revision: str = "0003_welcome_email"
down_revision: str | None = "0002_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "welcome_email_sent_at",
                src.infrastructure.database.models.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("welcome_email_sent_at")
