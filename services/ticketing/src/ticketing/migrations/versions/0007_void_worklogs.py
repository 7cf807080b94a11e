"""A worklog of a ticket closed unresolved (a duplicate, a mistake) is void
(``worklogs.void``): it is never billed (``billable_on_close``), so it no
longer holds its engineer's time either. The exclusion constraint
``worklogs_no_overlap`` (0002) is rebuilt over the worklogs not void only, so
the engineer logs that hour on the ticket they really worked, where it is
paid once.

Safe for the data already there: the worklogs of tickets already closed
unresolved (never billable) become void, and the new constraint is looser
than the old one, so nothing recorded can violate it. The constraint keeps
its name (the service maps its violation by name, the version before this
one too during a rolling update: its worklogs are not void by default, and
a duplicate it closes meanwhile keeps holding its hours, as before).
Rebuilding it reads the table once under a lock that holds worklogs back for
that long (seconds for the table's size).

The downgrade puts the old constraint back and drops the column; it stops,
in one transaction that leaves nothing behind, naming how many pairs of
worklogs overlap once the void ones count again (an hour logged on a
duplicate and again on the real ticket): correct those first.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""
from alembic import op
from sqlalchemy import text

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OVERLAPPING = """
SELECT count(*) FROM worklogs a JOIN worklogs b
    ON a.engineer_id = b.engineer_id AND a.id < b.id
   AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)
"""


def upgrade() -> None:
    op.execute("ALTER TABLE worklogs ADD COLUMN void boolean NOT NULL DEFAULT false")
    op.execute("UPDATE worklogs w SET void = true FROM tickets t WHERE t.id = w.ticket_id "
               "AND t.status = 'closed' AND t.resolved_at IS NULL AND NOT w.billable")
    op.execute("ALTER TABLE worklogs DROP CONSTRAINT worklogs_no_overlap")
    op.execute("ALTER TABLE worklogs ADD CONSTRAINT worklogs_no_overlap "
               "EXCLUDE USING gist (engineer_id WITH =, tstzrange(started_at, ended_at) WITH &&) WHERE (NOT void)")


def downgrade() -> None:
    pairs = op.get_bind().execute(text(OVERLAPPING)).scalar_one()
    if pairs:
        raise RuntimeError(
            f"{pairs} pair(s) of worklogs overlap once the void ones count again (an hour logged on a ticket "
            "closed unresolved and again on another): correct them before this downgrade")
    op.execute("ALTER TABLE worklogs DROP CONSTRAINT worklogs_no_overlap")
    op.execute("ALTER TABLE worklogs ADD CONSTRAINT worklogs_no_overlap "
               "EXCLUDE USING gist (engineer_id WITH =, tstzrange(started_at, ended_at) WITH &&)")
    op.execute("ALTER TABLE worklogs DROP COLUMN void")
