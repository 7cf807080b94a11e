"""The retention purge's indexes (``tuoguan_common.retention.create_indexes``),
built without stopping the writes: here every write claims its idempotency
key and every device alarm an inbox row.

Revision ID: 0005
Revises: 0004
"""
from tuoguan_common import retention

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    retention.create_indexes()


def downgrade() -> None:
    retention.drop_indexes()
