"""The retention purge's indexes (``tuoguan_common.retention.create_indexes``),
built without stopping the writes: here sign-ups, password resets and device
tokens claim idempotency keys.

Revision ID: 0008
Revises: 0007
"""
from tuoguan_common import retention

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    retention.create_indexes()


def downgrade() -> None:
    retention.drop_indexes()
