"""Device alarms' clearances are remembered, and each device ticket its
alarm's latest raise: the specimen bank's DeviceAlarmRaised and
DeviceAlarmCleared come on separate queues, in any order, so a clearance
handled before its alarm must still stop that alarm from opening a ticket
nothing would resolve, and a late clearance of an earlier episode must not
resolve the newer one's ticket.

``device_alarm_clearances`` keeps one row per device: the latest clearance
time (the bank's clock), keyed by what every fingerprint of the device's
alarms starts with (``device:<id>:``, a ':' in the id written %3A and '%'
%25: ``domain.alerts.device_alarms_prefix``), since a clearance names no kind.
The worker forgets rows a month old. ``tickets.alert_raised_at`` is empty for
tickets opened before this migration (and for Alertmanager's): a clearance
resolves them as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE device_alarm_clearances (
    fingerprint_prefix  text PRIMARY KEY,
    cleared_at          timestamptz NOT NULL
);
-- The worker's timer forgets the old ones.
CREATE INDEX device_alarm_clearances_by_age ON device_alarm_clearances (cleared_at);

ALTER TABLE tickets ADD COLUMN alert_raised_at timestamptz;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("ALTER TABLE tickets DROP COLUMN alert_raised_at")
    op.execute("DROP TABLE device_alarm_clearances")
