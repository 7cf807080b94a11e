"""The retention purge's indexes (``tuoguan_common.retention.create_indexes``),
built without stopping the writes: here every hold claims its idempotency
key and every payment event an inbox row, hundreds a second in the Monday
surge.

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
