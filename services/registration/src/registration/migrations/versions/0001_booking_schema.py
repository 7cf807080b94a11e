"""Departments, doctors, fees, session templates, sessions, slots, bookings;
the shared outbox, inbox and idempotency keys.

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

PERIODS = "('morning', 'afternoon', 'evening')"

SCHEMA = f"""
CREATE TABLE departments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The registration fee follows the doctor's title.
CREATE TABLE title_fees (
    title    text PRIMARY KEY CHECK (title IN ('resident', 'attending', 'associate_chief', 'chief')),
    fee_fen  bigint NOT NULL CHECK (fee_fen >= 0)
);

CREATE TABLE doctors (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The hospital's staff number: how the roster names a doctor.
    staff_code     text NOT NULL UNIQUE,
    department_id  uuid NOT NULL REFERENCES departments (id),
    name           text NOT NULL,
    title          text NOT NULL REFERENCES title_fees (title),
    speciality     text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX doctors_by_department ON doctors (department_id);

CREATE TABLE session_templates (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    doctor_id          uuid NOT NULL REFERENCES doctors (id),
    weekday            smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    period             text NOT NULL CHECK (period IN {PERIODS}),
    start_time         time NOT NULL,
    end_time           time NOT NULL CHECK (end_time > start_time),
    slot_minutes       integer NOT NULL CHECK (slot_minutes > 0),
    capacity_per_slot  integer NOT NULL CHECK (capacity_per_slot > 0),
    active             boolean NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (doctor_id, weekday, period)
);

CREATE TABLE sessions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    doctor_id          uuid NOT NULL REFERENCES doctors (id),
    department_id      uuid NOT NULL REFERENCES departments (id),
    template_id        uuid REFERENCES session_templates (id),
    service_date       date NOT NULL,
    period             text NOT NULL CHECK (period IN {PERIODS}),
    status             text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'SUSPENDED')),
    released_at        timestamptz NOT NULL,
    suspended_at       timestamptz,
    suspend_reason     text NOT NULL DEFAULT '',
    -- Queue numbers are given in order of payment within the session.
    last_queue_number  integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    -- Publishing twice creates nothing twice.
    UNIQUE (doctor_id, service_date, period)
) WITH (fillfactor = 70);
CREATE INDEX sessions_by_day ON sessions (service_date, department_id);

-- A slot repeats its session's doctor, department, day and release so that a
-- hold reads and changes this one row; "suspended" mirrors the session's
-- status for the same reason.
CREATE TABLE slots (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id     uuid NOT NULL REFERENCES sessions (id),
    doctor_id      uuid NOT NULL REFERENCES doctors (id),
    department_id  uuid NOT NULL REFERENCES departments (id),
    service_date   date NOT NULL,
    period         text NOT NULL CHECK (period IN {PERIODS}),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL CHECK (ends_at > starts_at),
    capacity       integer NOT NULL CHECK (capacity > 0),
    booked         integer NOT NULL DEFAULT 0,
    held           integer NOT NULL DEFAULT 0,
    fee_fen        bigint NOT NULL CHECK (fee_fen >= 0),
    released_at    timestamptz NOT NULL,
    suspended      boolean NOT NULL DEFAULT false,
    -- The last line against overbooking, whatever the code does.
    CHECK (booked >= 0 AND held >= 0 AND booked + held <= capacity),
    UNIQUE (session_id, starts_at)
-- Every hold rewrites its slot's row: room on the page keeps the update
-- "HOT" (no new index entries), which the 07:00 surge depends on.
) WITH (fillfactor = 50);
CREATE INDEX slots_by_department ON slots (department_id, service_date, starts_at);
CREATE INDEX slots_by_doctor ON slots (doctor_id, service_date, starts_at);

CREATE SEQUENCE booking_numbers;

-- A booking repeats its slot's facts, which never change, so the patient
-- rules and the booking views read no other table. Only the slot is a foreign
-- key (the rest follow from it), and the indexes are the few the hold path
-- can afford: every index and foreign key is work inside the hold.
CREATE TABLE bookings (
    id               uuid PRIMARY KEY,
    -- From a sequence: unique by construction.
    booking_number   text NOT NULL,
    patient_id       text NOT NULL,
    slot_id          uuid NOT NULL REFERENCES slots (id),
    session_id       uuid NOT NULL,
    doctor_id        uuid NOT NULL,
    department_id    uuid NOT NULL,
    service_date     date NOT NULL,
    period           text NOT NULL CHECK (period IN {PERIODS}),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED', 'CHECKED_IN', 'NO_SHOW')),
    fee_fen          bigint NOT NULL CHECK (fee_fen >= 0),
    hold_expires_at  timestamptz,
    payment_id       text,
    queue_number     integer,
    cancel_reason    text NOT NULL DEFAULT '',
    refund_due       boolean NOT NULL DEFAULT false,
    refunded_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    confirmed_at     timestamptz,
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
-- The patient's rules and "my bookings".
CREATE INDEX bookings_by_patient ON bookings (patient_id, starts_at);
-- The expiry timer's work list.
CREATE INDEX bookings_due_holds ON bookings (hold_expires_at) WHERE status = 'HELD';
-- Suspending a session finds the bookings that hold a place in it.
CREATE INDEX bookings_by_session ON bookings (session_id) WHERE status IN ('HELD', 'CONFIRMED');
-- One queue number per patient in a session; holds have none and skip the index.
CREATE UNIQUE INDEX bookings_queue_numbers ON bookings (session_id, queue_number) WHERE queue_number IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(OUTBOX_DDL)
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("""
        DROP TABLE bookings; DROP SEQUENCE booking_numbers; DROP TABLE slots; DROP TABLE sessions;
        DROP TABLE session_templates; DROP TABLE doctors; DROP TABLE title_fees; DROP TABLE departments;
        DROP TABLE idempotency_keys; DROP TABLE inbox; DROP TABLE outbox;
    """)
