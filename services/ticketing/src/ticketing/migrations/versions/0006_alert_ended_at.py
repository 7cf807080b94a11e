"""An alert ticket keeps its resolution's end (``tickets.alert_ended_at``, the
resolved notification's endsAt) beside its latest start (``alert_raised_at``,
now kept for Alertmanager's alerts as for the devices'): Alertmanager's HA pair
and its retries deliver late copies of a notification, and a copy of the
firing that a resolution already ended must not reopen the ticket.

Tickets resolved before this migration have no end: the next firing reopens
them, as before. A nullable column: no table rewrite.

Revision ID: 0006
Revises: 0005
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tickets ADD COLUMN alert_ended_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE tickets DROP COLUMN alert_ended_at")
