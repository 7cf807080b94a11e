"""The worker's settling timers read billing's small partial indexes of
payments, ten times a second, however the table grew since PostgreSQL made
their plan and since it last analysed the table (never, on a server without
autovacuum). A plan made for an empty table read every payment on each round:
measured in the surge bench, whole-table reads ten times a second as payments
grew."""
from __future__ import annotations

import datetime as dt

import pytest
from billing.domain.payments import PaymentStatus
from billing.store import BillingStore
from tuoguan_common.db import Database

pytestmark = pytest.mark.integration

GROWN_TO = 20_000


def _whole_table_reads(cur) -> int:
    """This transaction's sequential scans of payments (counted before they reach the statistics views)."""
    cur.execute("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'payments'")
    return cur.fetchone()["seq_scan"]


def test_the_settling_rounds_read_no_whole_table_however_payments_grew(billing_db):
    # One connection: a prepared statement and its plan belong to the connection.
    db = Database(billing_db.url, max_size=1, name="timer-plans").open()
    try:
        store = BillingStore(db)
        now = dt.datetime.now(dt.timezone.utc)
        # Rounds on an empty table, past psycopg's threshold (5) for preparing a statement.
        for _ in range(10):
            with db.transaction() as cur:
                store.claim_payments(cur, PaymentStatus.PENDING, 100, lock=False)
                store.claim_payments(cur, PaymentStatus.PENDING, 100, created_before=now)
                store.claim_payments(cur, PaymentStatus.UNKNOWN, 100)
        with db.transaction() as cur:
            cur.execute(
                "INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                "provider_reference, created_at, updated_at, settled_at, trace_carrier) "
                "SELECT gen_random_uuid(), 'booking-' || g, 'patient-' || g, 5000, 'CAPTURED', 'sandbox', "
                "'reference-' || g, now() - interval '1 hour', now(), now(), '{}'::jsonb "
                "FROM generate_series(1, %s) AS g", (GROWN_TO,))
        with db.transaction() as cur:
            assert store.claim_payments(cur, PaymentStatus.PENDING, 100, lock=False) == []
            assert store.claim_payments(cur, PaymentStatus.PENDING, 100, created_before=now) == []
            assert store.claim_payments(cur, PaymentStatus.UNKNOWN, 100) == []
            assert _whole_table_reads(cur) == 0
            cur.execute("SELECT count(*) AS n FROM payments WHERE amount_fen = 5000")
            assert cur.fetchone()["n"] == GROWN_TO
            assert _whole_table_reads(cur) == 1, "a filter on an unindexed column reads the whole table, and is counted"
    finally:
        db.close()
