"""A template makes one session a day: UNIQUE (template_id, service_date).

Publishing decided what existed by doctor, day and period only, so a template
edited to another period or doctor published a second session on every day
it had already published. Such pairs may already exist, and patients may have
booked either session: this revision deletes and cancels nothing. The session
published first keeps its template; each later one is detached from it
(template_id set to NULL) and stays as it is, bookings and all, for the office
to suspend if the doctor does not hold both (the migration log names them).

The index is built CONCURRENTLY: sessions' rows take every confirmation's
queue number, and a plain CREATE INDEX would stop those writes while it built
(and while it waited for its lock). A build that failed (a duplicate written
meanwhile by a publisher of the previous release) leaves an invalid index,
dropped and built again on the next run.

Revision ID: 0004
Revises: 0003
"""
import logging

from alembic import op
from sqlalchemy import text

from tuoguan_common.db import create_index_concurrently, drop_index_concurrently, own_transaction

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "sessions_one_per_template_day"

log = logging.getLogger("alembic.runtime.migration")

DETACH_LATER_DUPLICATES = """
UPDATE sessions s SET template_id = NULL
FROM (SELECT id, row_number() OVER (PARTITION BY template_id, service_date ORDER BY created_at, id) AS nth
      FROM sessions WHERE template_id IS NOT NULL) d
WHERE s.id = d.id AND d.nth > 1
RETURNING s.id, s.service_date
"""


def upgrade() -> None:
    # Committed before the index is built, in a transaction of its own (the lock timeout bounds its waits).
    with op.get_context().autocommit_block(), own_transaction() as bind:
        detached = bind.execute(text(DETACH_LATER_DUPLICATES)).fetchall()
    if detached:
        log.warning("sessions published twice from one template, detached from it: %s",
                    ", ".join(f"{row.id} ({row.service_date})" for row in detached))
    create_index_concurrently(INDEX, "ON sessions (template_id, service_date)", unique=True)


def downgrade() -> None:
    drop_index_concurrently(INDEX)
