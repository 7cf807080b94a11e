"""Events no handler can apply are kept in dead_letters (tuoguan_common.outbox.DDL)
instead of looping in front of the events behind them.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from tuoguan_common.outbox import DDL

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The shared tables are created with IF NOT EXISTS: running the whole DDL
    # again adds only what this database lacks.
    op.execute(DDL)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dead_letters")
