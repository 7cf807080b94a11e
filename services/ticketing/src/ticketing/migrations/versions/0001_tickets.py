"""The subsystem catalogue, tickets with their event history (the SLA is
computed from it), comments, worklogs, calendar overrides; the shared outbox,
inbox and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""
from alembic import op
from tuoguan_common.outbox import DDL as OUTBOX_DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE subsystems (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code           text NOT NULL UNIQUE,
    name           text NOT NULL,
    name_en        text NOT NULL DEFAULT '',
    category       text NOT NULL DEFAULT '',
    criticality    text NOT NULL CHECK (criticality IN ('critical', 'high', 'normal', 'low')),
    team           text NOT NULL,
    vendor         text NOT NULL DEFAULT '',
    service_hours  text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE ticket_numbers;

CREATE TABLE tickets (
    id                 uuid PRIMARY KEY,
    number             text NOT NULL UNIQUE,
    kind               text NOT NULL CHECK (kind IN ('incident', 'service_request', 'change')),
    subsystem_id       uuid NOT NULL REFERENCES subsystems (id),
    title              text NOT NULL,
    description        text NOT NULL DEFAULT '',
    impact             text NOT NULL CHECK (impact IN ('high', 'medium', 'low')),
    urgency            text NOT NULL CHECK (urgency IN ('high', 'medium', 'low')),
    priority           smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
    major_incident     boolean NOT NULL DEFAULT false,
    status             text NOT NULL
        CHECK (status IN ('new', 'assigned', 'in_progress', 'pending', 'resolved', 'closed')),
    source             text NOT NULL CHECK (source IN ('portal', 'staff', 'alert', 'device')),
    requester_id       text NOT NULL,
    reported_by_id     text NOT NULL,
    assignee_id        text,
    team               text NOT NULL DEFAULT '',
    paused_by          text CHECK (paused_by IN ('hospital', 'contractor', 'vendor')),
    resolution_note    text NOT NULL DEFAULT '',
    alert_fingerprint  text,
    alert_repeats      integer NOT NULL DEFAULT 0,
    worklog_minutes    integer NOT NULL DEFAULT 0,
    escalation_level   smallint NOT NULL DEFAULT 0,
    response_breached  boolean NOT NULL DEFAULT false,
    resolution_breached boolean NOT NULL DEFAULT false,
    -- When the worker should look at this ticket's SLA again (a threshold it will cross).
    next_check_at      timestamptz,
    auto_close_at      timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    resolved_at        timestamptz,
    closed_at          timestamptz
);
-- One open ticket per alert: repeats of a notification find it, a storm makes one.
CREATE UNIQUE INDEX tickets_open_alert ON tickets (alert_fingerprint)
    WHERE alert_fingerprint IS NOT NULL AND status <> 'closed';
CREATE INDEX tickets_of_requester ON tickets (requester_id, created_at DESC);
CREATE INDEX tickets_of_assignee ON tickets (assignee_id) WHERE status <> 'closed';
CREATE INDEX tickets_open ON tickets (created_at) WHERE status <> 'closed';
CREATE INDEX tickets_to_check ON tickets (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX tickets_to_close ON tickets (auto_close_at) WHERE status = 'resolved';

-- The history the SLA is computed from: correcting it (or the calendar) re-rates the ticket.
CREATE TABLE ticket_events (
    id         bigserial PRIMARY KEY,
    ticket_id  uuid NOT NULL REFERENCES tickets (id),
    at         timestamptz NOT NULL,
    kind       text NOT NULL,
    side       text,
    priority   smallint,
    -- A priority raised by the SLA escalation itself: the ticket keeps the targets it is measured against.
    escalation boolean NOT NULL DEFAULT false,
    actor_id   text NOT NULL,
    note       text NOT NULL DEFAULT ''
);
CREATE INDEX ticket_events_of_ticket ON ticket_events (ticket_id, at, id);

CREATE TABLE comments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    ticket_id   uuid NOT NULL REFERENCES tickets (id),
    author_id   text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX comments_of_ticket ON comments (ticket_id, created_at);

CREATE TABLE worklogs (
    id           uuid PRIMARY KEY,
    ticket_id    uuid NOT NULL REFERENCES tickets (id),
    engineer_id  text NOT NULL,
    grade        text NOT NULL,
    activity     text NOT NULL,
    started_at   timestamptz NOT NULL,
    minutes      integer NOT NULL CHECK (minutes > 0),
    note         text NOT NULL DEFAULT '',
    billable     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL
);
CREATE INDEX worklogs_of_ticket ON worklogs (ticket_id, started_at);

-- Days the statutory calendar library does not know yet, or gets wrong: admins set them.
CREATE TABLE calendar_overrides (
    day      date PRIMARY KEY,
    working  boolean NOT NULL,
    note     text NOT NULL DEFAULT ''
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(OUTBOX_DDL)


def downgrade() -> None:
    op.execute("""
        DROP TABLE calendar_overrides; DROP TABLE worklogs; DROP TABLE comments; DROP TABLE ticket_events;
        DROP TABLE tickets; DROP SEQUENCE ticket_numbers; DROP TABLE subsystems;
        DROP TABLE IF EXISTS dead_letters; DROP TABLE idempotency_keys; DROP TABLE inbox; DROP TABLE outbox;
    """)
