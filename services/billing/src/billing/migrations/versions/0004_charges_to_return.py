"""The worker's queue of charges to give back: charges the provider made for
payments billing had already failed (an authorisation that outlived the grace
and the booking's hold).

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty but for those charges: the refund timer scans it every round.
    op.execute("CREATE INDEX payments_charged_after_failure ON payments (created_at) "
               "WHERE status = 'FAILED' AND refund_requested_reason = 'charged_after_failure'")


def downgrade() -> None:
    op.execute("DROP INDEX payments_charged_after_failure")
