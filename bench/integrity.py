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
    double_charges = _one(bill, """
        SELECT (SELECT count(*) FROM (SELECT booking_id FROM payments WHERE status IN ('CAPTURED', 'REFUNDED')
                                      GROUP BY booking_id HAVING count(*) > 1) d)
             + (SELECT count(*) FROM (SELECT payment_id FROM journal_entries
                                      GROUP BY kind, payment_id HAVING count(*) > 1) e)
    """)
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
        "unbalanced_journal_entries": unbalanced,
        "lost_events": (captured - handled) + lost_confirmations + unsent,
    }
