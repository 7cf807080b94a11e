"""An ASSIGNED event names the engineer it assigned the ticket to
(``ticket_events.assignee_id``; NULL for an assignment to a team alone and
for the level-3 hand-off to the escalation team), so who was ever on a
ticket can still log the hours they worked on it after a dispatcher or the
escalation took it off them.

Nothing is rewritten: ASSIGNED events recorded before this migration name
nobody. For them the service falls back on what the history does show of
an engineer on the ticket (``Store._worked_on``): an ASSIGNED, STARTED,
PAUSED, RESUMED or RESOLVED event they made themselves (only the ticket's
engineer makes those, a dispatcher or admin aside) or a worklog of theirs on
it. An engineer a dispatcher assigned before it and who had done none of
that cannot be told from the history: their current assignment still counts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: instant on a table of any size, and the version before this one
    # (still serving during a rolling update) writes its events without it.
    op.execute("ALTER TABLE ticket_events ADD COLUMN assignee_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE ticket_events DROP COLUMN assignee_id")
