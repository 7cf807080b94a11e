"""One engineer's worklogs may not overlap in time, across all tickets: each
worklog gets its end (``ended_at``, computed from the start and the minutes)
and an exclusion constraint on (engineer, [start, end)), so two requests
racing each other cannot both record the same hour, whatever api replica
takes them.

Needs the ``btree_gist`` extension (PostgreSQL's contrib; a trusted extension,
so the owner of the database may create it; otherwise a superuser runs
``CREATE EXTENSION btree_gist`` in the database beforehand). Refuses to run,
naming how many there are, while recorded worklogs overlap: they are time
paid twice, for a person to correct (see the README), not for a migration to
delete.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# timestamptz + interval is only STABLE in PostgreSQL (adding days or months depends on the
# session's time zone), and a generated column or an index needs an IMMUTABLE expression. Adding
# whole minutes (make_interval(mins => ...) has no day or month part) is the same instant in every
# time zone, so this wrapper is honestly immutable.
END_FUNCTION = """
CREATE FUNCTION worklog_end(started_at timestamptz, minutes integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS 'SELECT started_at + make_interval(mins => minutes)'
"""

OVERLAPPING = """
SELECT count(*) FROM worklogs a JOIN worklogs b
    ON a.engineer_id = b.engineer_id AND a.id < b.id
   AND tstzrange(a.started_at, a.ended_at) && tstzrange(b.started_at, b.ended_at)
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute(END_FUNCTION)
    # Generated, so the version before this one (still serving during a rolling update) writes it too.
    op.execute("ALTER TABLE worklogs ADD COLUMN ended_at timestamptz NOT NULL "
               "GENERATED ALWAYS AS (worklog_end(started_at, minutes)) STORED")
    pairs = op.get_bind().execute(text(OVERLAPPING)).scalar_one()
    if pairs:
        raise RuntimeError(
            f"{pairs} pair(s) of recorded worklogs overlap (the same engineer, the same time): correct them "
            "before this migration (services/ticketing/README.md, 'Worklogs that overlap')")
    # The constraint's index also serves the look-up of what a refused worklog overlaps.
    op.execute("ALTER TABLE worklogs ADD CONSTRAINT worklogs_no_overlap "
               "EXCLUDE USING gist (engineer_id WITH =, tstzrange(started_at, ended_at) WITH &&)")


def downgrade() -> None:
    # btree_gist stays: it may have been there before, and other objects may use it.
    op.execute("ALTER TABLE worklogs DROP CONSTRAINT worklogs_no_overlap")
    op.execute("ALTER TABLE worklogs DROP COLUMN ended_at")
    op.execute("DROP FUNCTION worklog_end(timestamptz, integer)")
