"""Open device alarms take the fingerprint the worker now gives them: a ':' in
the device id written %3A ('%' as %25), so that clearing device 00 no longer
resolves device 00:1A:2B's alarm, and 00:1A:2B's own clearance (and its next
alarm) finds the ticket opened before the upgrade.

Only the fingerprints ``device:<id>:<kind>`` of tickets not closed whose id
holds a ':' are rewritten, reading the kind after the last ':' (the specimen
bank's kinds hold none). An id with a '%' and no ':' cannot be told from one
written the new way: such an alarm open across the upgrade is closed by hand.
A rewrite that would meet an open alarm already written the new way is left.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

REWRITE = """
UPDATE tickets t SET alert_fingerprint = n.fingerprint
FROM (
    SELECT id, 'device:' || replace(replace(m[1], '%', '%25'), ':', '%3A') || ':' || m[2] AS fingerprint
    FROM (SELECT id, regexp_match(alert_fingerprint, '^device:(.*):([^:]*)$') AS m
          FROM tickets WHERE status <> 'closed' AND alert_fingerprint LIKE 'device:%') legacy
    WHERE m IS NOT NULL AND strpos(m[1], ':') > 0
) n
WHERE t.id = n.id AND NOT EXISTS (
    SELECT 1 FROM tickets o WHERE o.alert_fingerprint = n.fingerprint AND o.status <> 'closed')
"""

RESTORE = """
UPDATE tickets SET alert_fingerprint =
    'device:' || replace(replace(m[1], '%3A', ':'), '%25', '%') || ':' || m[2]
FROM (SELECT id AS legacy_id, regexp_match(alert_fingerprint, '^device:([^:]*):(.*)$') AS m
      FROM tickets WHERE status <> 'closed' AND alert_fingerprint LIKE 'device:%\\%3A%') n
WHERE id = n.legacy_id AND m IS NOT NULL
"""


def upgrade() -> None:
    op.execute(REWRITE)


def downgrade() -> None:
    op.execute(RESTORE)
