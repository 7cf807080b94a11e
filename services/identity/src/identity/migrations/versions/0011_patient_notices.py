"""Texts to patients about their bookings (identity's worker; today the
suspension of a session they booked): one row per booking, so that a
redelivered or repeated event sends nothing more. It is written in the
transaction of the event's inbox row, then sent; a failed send waits its
turn to be tried again (``next_attempt_at``) until it is given up.

No phone number and nothing of the patient's: the account's id, and the
text's parameters (the day, the period, the department and doctor, whether
the fee goes back). The phone is read from ``accounts`` when sending.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE patient_notices (
            booking_id      text        PRIMARY KEY,
            kind            text        NOT NULL,
            account_id      uuid,
            params          jsonb       NOT NULL,
            -- pending: to send (at next_attempt_at); sent; given_up: failed
            -- its last attempt; skipped: nobody to text (skip_reason).
            status          text        NOT NULL CHECK (status IN ('pending', 'sent', 'given_up', 'skipped')),
            skip_reason     text,
            attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at timestamptz,
            last_error      text,
            created_at      timestamptz NOT NULL,
            done_at         timestamptz,
            CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
        )
    """)
    op.execute("CREATE INDEX patient_notices_due ON patient_notices (next_attempt_at) WHERE status = 'pending'")
    op.execute("CREATE INDEX patient_notices_done ON patient_notices (done_at) WHERE status <> 'pending'")


def downgrade() -> None:
    op.execute("DROP TABLE patient_notices")
