"""finding groups: a spam burst is one finding across restarts and workers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 02:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("group_key", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_findings_group", ["account_id", "rule_id", "group_key"])


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_index("ix_findings_group")
        batch.drop_column("observed_at")
        batch.drop_column("group_key")
