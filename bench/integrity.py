"""What must never happen, counted after the surge from each service's own
database and from what a consumer received."""
from __future__ import annotations

import psycopg

from tuoguan_common.launcher import Platform


def _one(url: str, sql: str, params=()) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def check(platform: Platform, booking_ids: list[str], confirmed_seen: dict[str, float]) -> dict[str, int]:
    reg = platform.db_url("registration")
    bill = platform.db_url("billing")
    overbooked = _one(reg, """
        SELECT count(*) FROM slots s
        LEFT JOIN (SELECT slot_id, count(*) AS live FROM bookings
                   WHERE status IN ('HELD', 'CONFIRMED', 'CHECKED_IN', 'NO_SHOW') GROUP BY slot_id) b
               ON b.slot_id = s.id
        WHERE s.booked + s.held > s.capacity OR coalesce(b.live, 0) > s.capacity
           OR coalesce(b.live, 0) <> s.booked + s.held
    """)
    # Money as the provider saw it, not as billing recorded it: a charge taken
    # twice for one booking, or taken with no payment row, is a double charge.
    double_charges = _one(bill, """
        WITH kept AS (
            SELECT c.reference, c.merchant_payment_id
            FROM sandbox_provider.charges c
            WHERE c.outcome = 'captured'
              AND NOT EXISTS (SELECT 1 FROM sandbox_provider.refunds r WHERE r.charge_reference = c.reference)
        )
        SELECT (SELECT count(*) FROM (SELECT p.booking_id FROM kept k JOIN payments p
                                      ON p.payment_id::text = k.merchant_payment_id
                                      GROUP BY p.booking_id HAVING count(*) > 1) twice)
             + (SELECT count(*) FROM kept k
                WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.payment_id::text = k.merchant_payment_id))
    """)
    with psycopg.connect(bill) as conn:
        kept_bookings = [r[0] for r in conn.execute("""
            SELECT p.booking_id FROM sandbox_provider.charges c
            JOIN payments p ON p.payment_id::text = c.merchant_payment_id
            WHERE c.outcome = 'captured'
              AND NOT EXISTS (SELECT 1 FROM sandbox_provider.refunds r WHERE r.charge_reference = c.reference)
        """).fetchall()]
    with psycopg.connect(reg) as conn:
        booked = {str(r[0]) for r in conn.execute(
            "SELECT id FROM bookings WHERE id = ANY(%s::uuid[]) AND status IN ('CONFIRMED', 'CHECKED_IN', 'NO_SHOW')",
            (kept_bookings,)).fetchall()}
    charged_without_booking = sum(1 for b in kept_bookings if b not in booked)
    unbalanced = _one(bill, """
        SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id
            HAVING sum(CASE side WHEN 'debit' THEN amount_fen ELSE -amount_fen END) <> 0) u
    """)
    # Every capture billing published must have been handled by registration,
    # and every confirmation registration published must have reached a consumer.
    captured = _one(bill, "SELECT count(*) FROM outbox WHERE event_type = 'PaymentCaptured'")
    unsent = _one(bill, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") + \
        _one(reg, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    with psycopg.connect(bill) as conn:
        capture_ids = [str(r[0]) for r in conn.execute(
            "SELECT event_id FROM outbox WHERE event_type = 'PaymentCaptured'").fetchall()]
    with psycopg.connect(reg) as conn:
        handled = int(conn.execute("SELECT count(DISTINCT event_id) FROM inbox WHERE event_id = ANY(%s::uuid[])",
                                   (capture_ids,)).fetchone()[0])
        confirmed_ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM bookings WHERE id = ANY(%s::uuid[]) AND payment_id IS NOT NULL "
            "AND status IN ('CONFIRMED', 'CHECKED_IN', 'NO_SHOW')", (booking_ids,)).fetchall()]
    lost_confirmations = sum(1 for b in confirmed_ids if b not in confirmed_seen)
    return {
        "overbooked_slots": overbooked,
        "double_charges": double_charges,
        "charged_without_booking": charged_without_booking,
        "unbalanced_journal_entries": unbalanced,
        "lost_events": (captured - handled) + lost_confirmations + unsent,
    }
