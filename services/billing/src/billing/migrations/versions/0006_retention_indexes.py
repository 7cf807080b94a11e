"""The retention purge's indexes (``tuoguan_common.retention.create_indexes``),
built without stopping the writes: here every payment claims its idempotency
key and every refund event an inbox row.

Revision ID: 0006
Revises: 0005
"""
from tuoguan_common import retention

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    retention.create_indexes()


def downgrade() -> None:
    retention.drop_indexes()
