"""All SQL of billing's own tables: payments, refunds, the ledger.

Methods take the caller's cursor, so one transaction holds a payment's
change, its journal entry, its outbox event and its inbox or idempotency row.
The sandbox provider's books are its own (providers/sandbox.py).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Iterable, Sequence

import psycopg

from tuoguan_common.db import Database, pg_array
from tuoguan_common.paging import Page

from .domain.ledger import EntryKind, JournalEntry
from .domain.payments import Payment, PaymentStatus, sources_of
from .domain.reconciliation import MOVEMENT_OF_ENTRY, Movement, movement_reason

_PAYMENT_COLUMNS = (
    "payment_id::text AS payment_id, booking_id, patient_id, amount_fen, status, provider, provider_reference, "
    "failure_reason, refunded_fen, refund_requested_reason, created_at, settled_at, trace_carrier, "
    "hold_expires_at, authorized_at, method_token, refunded_after_failure_fen, refunded_after_failure_at"
)


def _payment(row: dict) -> Payment:
    return Payment(
        payment_id=row["payment_id"], booking_id=row["booking_id"], patient_id=row["patient_id"],
        amount_fen=row["amount_fen"], status=PaymentStatus(row["status"]), provider=row["provider"],
        created_at=row["created_at"], provider_reference=row["provider_reference"],
        failure_reason=row["failure_reason"], settled_at=row["settled_at"], refunded_fen=row["refunded_fen"],
        refund_requested_reason=row["refund_requested_reason"], trace_carrier=row["trace_carrier"] or {},
        hold_expires_at=row["hold_expires_at"], authorized_at=row["authorized_at"], method_token=row["method_token"],
        refunded_after_failure_fen=row["refunded_after_failure_fen"],
        refunded_after_failure_at=row["refunded_after_failure_at"],
    )


class BillingStore:
    def __init__(self, database: Database):
        self.database = database

    # Payments.

    def insert_payments(self, cur: psycopg.Cursor, opened: Sequence[Payment]) -> set[str]:
        """The ids of the payments written; one is left out when its booking
        already has a payment that is not FAILED (another attempt got there
        first): the unique index decides, so two concurrent attempts cannot both pass.
        Only that index: an id already taken raises (the caller checks ids
        first), rather than passing for another attempt at the booking."""
        if not opened:
            return set()
        # In booking order, so two batches wait on each other's bookings, never deadlock.
        opened = sorted(opened, key=lambda p: p.booking_id)
        cur.execute(
            "INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, created_at, "
            "updated_at, trace_carrier, hold_expires_at, method_token) "
            "SELECT p.payment_id, p.booking_id, p.patient_id, p.amount_fen, p.status, p.provider, p.created_at, "
            "p.created_at, p.trace_carrier, p.hold_expires_at, p.method_token "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], "
            "%s::timestamptz[], %s::jsonb[], %s::timestamptz[], %s::text[]) AS p(payment_id, booking_id, patient_id, "
            "amount_fen, status, provider, created_at, trace_carrier, hold_expires_at, method_token) "
            "ON CONFLICT (booking_id) WHERE status <> 'FAILED' DO NOTHING RETURNING payment_id::text",
            (pg_array(p.payment_id for p in opened), pg_array(p.booking_id for p in opened),
             pg_array(p.patient_id for p in opened), pg_array(p.amount_fen for p in opened),
             pg_array(p.status.value for p in opened), pg_array(p.provider for p in opened),
             pg_array(p.created_at for p in opened), pg_array(json.dumps(p.trace_carrier) for p in opened),
             pg_array(p.hold_expires_at for p in opened), pg_array(p.method_token for p in opened)),
        )
        return {r["payment_id"] for r in cur.fetchall()}

    def set_provider_references(self, cur: psycopg.Cursor, references: Sequence[tuple[str, str]],
                                now: dt.datetime) -> dict[str, PaymentStatus]:
        """Stores each (payment id, provider reference) once (the api, a
        retry and the worker may all learn it) and forgets the method token;
        returns the ids stored now, not those stored already, each with the
        status of the payment it was stored on (FAILED: the charge came after
        billing gave the payment up, and its money must go back)."""
        if not references:
            return {}
        cur.execute(
            "UPDATE payments p SET provider_reference = r.reference, authorized_at = %s, method_token = NULL, "
            "updated_at = %s FROM unnest(%s::uuid[], %s::text[]) AS r(payment_id, reference) "
            "WHERE p.payment_id = r.payment_id AND p.provider_reference IS NULL "
            "RETURNING p.payment_id::text, p.status",
            (now, now, pg_array(r[0] for r in references), pg_array(r[1] for r in references)), prepare=False,
        )
        return {r["payment_id"]: PaymentStatus(r["status"]) for r in cur.fetchall()}

    def withdraw_unauthorized(self, cur: psycopg.Cursor, payment_ids: Sequence[str]) -> set[str]:
        """Deletes payments still PENDING without a reference: the provider
        refused to charge them, so neither money nor an event ever left
        billing. Returns the ids deleted."""
        if not payment_ids:
            return set()
        cur.execute("DELETE FROM payments WHERE payment_id = ANY(%s::uuid[]) AND status = 'PENDING' "
                    "AND provider_reference IS NULL RETURNING payment_id::text", (pg_array(payment_ids),),
                    prepare=False)
        return {r["payment_id"] for r in cur.fetchall()}

    def claim_unauthorized(self, cur: psycopg.Cursor, opened_before: dt.datetime, limit: int) -> list[Payment]:
        """Locks PENDING payments opened before ``opened_before`` that have no
        provider reference yet, oldest first (a small partial index)."""
        cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE status = 'PENDING' AND provider_reference IS NULL "
            "AND created_at <= %s ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED",
            (opened_before, limit),
        )
        return [_payment(r) for r in cur.fetchall()]

    def failed_unheard(self, cur: psycopg.Cursor, failed_since: dt.datetime, after: tuple[dt.datetime, str] | None,
                       limit: int) -> list[Payment]:
        """FAILED payments billing gave up without the provider's word
        (payments.FAILED_UNHEARD) since ``failed_since``, whose charge, if
        any, was neither asked back nor refunded: in failure order, from
        after ``after`` (failed at, payment id), at most ``limit``. Read, not
        locked. The literals match the partial index payments_failed_unheard."""
        conditions, params = ["settled_at >= %s"], [failed_since]
        if after is not None:
            conditions.append("(settled_at, payment_id) > (%s, %s::uuid)")
            params.extend(after)
        cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments p WHERE status = 'FAILED' "
            "AND failure_reason IN ('never_authorized', 'not_found_at_provider') AND refund_requested_reason IS NULL "
            f"AND {' AND '.join(conditions)} "
            "AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.payment_id) "
            "ORDER BY settled_at, payment_id LIMIT %s",
            (*params, limit),
        )
        return [_payment(r) for r in cur.fetchall()]

    def lock_payments(self, cur: psycopg.Cursor, payment_ids: Sequence[str]) -> dict[str, Payment]:
        """Locks these payments (in id order, so two callers never deadlock)
        and reads them as they are once locked."""
        if not payment_ids:
            return {}
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = ANY(%s::uuid[]) "
                    "ORDER BY payment_id FOR UPDATE", (pg_array(payment_ids),), prepare=False)
        return {r["payment_id"]: _payment(r) for r in cur.fetchall()}

    def refunded_payments(self, cur: psycopg.Cursor, payment_ids: Sequence[str]) -> set[str]:
        """Those of these payments that have a refund."""
        if not payment_ids:
            return set()
        cur.execute("SELECT payment_id::text FROM refunds WHERE payment_id = ANY(%s::uuid[])",
                    (pg_array(payment_ids),), prepare=False)
        return {r["payment_id"] for r in cur.fetchall()}

    def get_payment(self, cur: psycopg.Cursor, payment_id: str, *, lock: bool = False) -> Payment | None:
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = %s"
                    + (" FOR UPDATE" if lock else ""), (payment_id,))
        row = cur.fetchone()
        return _payment(row) if row else None

    def get_payments(self, cur: psycopg.Cursor, payment_ids: Sequence[str]) -> dict[str, Payment]:
        if not payment_ids:
            return {}
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = ANY(%s::uuid[])",
                    (pg_array(payment_ids),), prepare=False)
        return {r["payment_id"]: _payment(r) for r in cur.fetchall()}

    def live_payment_for_booking(self, cur: psycopg.Cursor, booking_id: str, *, lock: bool = False) -> Payment | None:
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE booking_id = %s AND status <> 'FAILED'"
                    + (" FOR UPDATE" if lock else ""), (booking_id,))
        row = cur.fetchone()
        return _payment(row) if row else None

    def payments_for_booking(self, cur: psycopg.Cursor, booking_id: str) -> list[Payment]:
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE booking_id = %s ORDER BY created_at",
                    (booking_id,))
        return [_payment(r) for r in cur.fetchall()]

    def payments_for_bookings(self, cur: psycopg.Cursor, booking_ids: Sequence[str]) -> dict[str, list[Payment]]:
        """Each booking's payments, oldest first (a booking with none is left out)."""
        found: dict[str, list[Payment]] = {}
        if booking_ids:
            cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE booking_id = ANY(%s::text[]) "
                        "ORDER BY created_at", (pg_array(booking_ids),), prepare=False)
            for row in cur.fetchall():
                found.setdefault(row["booking_id"], []).append(_payment(row))
        return found

    def payments_of_patient(self, cur: psycopg.Cursor, patient_id: str, page: Page) -> tuple[list[Payment], str]:
        """A page of the patient's payments, the latest first, and the next page's token."""
        rest, params = page.sql("created_at", "payment_id")
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE patient_id = %s {rest}", (patient_id, *params))
        return page.rows_and_token([_payment(r) for r in cur.fetchall()], lambda p: (p.created_at, p.payment_id))

    def claim_payments(self, cur: psycopg.Cursor, status: PaymentStatus, limit: int, *,
                       created_before: dt.datetime | None = None, payment_ids: Sequence[str] | None = None,
                       after: tuple[dt.datetime, str] | None = None, lock: bool = True) -> list[Payment]:
        """Locks a batch of payments in ``status`` that the provider has a
        reference for (of ``payment_ids`` when given), oldest first, from
        after ``after`` (opened at, payment id) when given; rows another
        worker replica holds are skipped, so replicas share the work. With
        ``lock=False`` it only reads them."""
        conditions, params = ["status = %s", "provider_reference IS NOT NULL"], [status.value]
        if created_before is not None:
            conditions.append("created_at <= %s")
            params.append(created_before)
        if after is not None:
            conditions.append("(created_at, payment_id) > (%s, %s::uuid)")
            params.extend(after)
        if payment_ids is not None:
            conditions.append("payment_id = ANY(%s::uuid[])")
            params.append(pg_array(payment_ids))
        # Planned afresh each round, with the status known. A prepared
        # statement's generic plan for "status = $1" can use none of the partial
        # indexes, and one made while payments was small (a new database; a
        # server without autovacuum never replaces it) read the whole table on
        # every round of the settling timer, ten times a second.
        cur.execute(
            f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE {' AND '.join(conditions)} "
            "ORDER BY created_at, payment_id LIMIT %s" + (" FOR UPDATE SKIP LOCKED" if lock else ""),
            (*params, limit), prepare=False,
        )
        return [_payment(r) for r in cur.fetchall()]

    def claim_refunds_requested(self, cur: psycopg.Cursor, limit: int, *,
                                after: tuple[dt.datetime, str] | None = None) -> list[Payment]:
        """Locks CAPTURED payments with a refund asked for, oldest first, from
        after ``after`` (opened at, payment id) when given, skipping those
        another replica holds."""
        return self._claim_refunds(cur, "refund_requested_reason IS NOT NULL AND status = 'CAPTURED'", (), limit, after)

    def claim_charges_to_return(self, cur: psycopg.Cursor, limit: int, *, reason: str,
                                after: tuple[dt.datetime, str] | None = None) -> list[Payment]:
        """Locks FAILED payments whose charge must go back (their refund
        asked for with ``reason``), as claim_refunds_requested (a small
        partial index, empty but for those)."""
        return self._claim_refunds(cur, "status = 'FAILED' AND refund_requested_reason = %s", (reason,), limit, after)

    @staticmethod
    def _claim_refunds(cur: psycopg.Cursor, condition: str, params: tuple, limit: int,
                       after: tuple[dt.datetime, str] | None) -> list[Payment]:
        if after is not None:
            condition += " AND (created_at, payment_id) > (%s, %s::uuid)"
            params = (*params, *after)
        cur.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE {condition} "
                    "ORDER BY created_at, payment_id LIMIT %s FOR UPDATE SKIP LOCKED", (*params, limit))
        return [_payment(r) for r in cur.fetchall()]

    def save_transitions(self, cur: psycopg.Cursor, changed: Sequence[Payment], now: dt.datetime) -> set[str]:
        """Writes payments' new statuses in one statement; returns the ids
        written. Each row moves only from a status its lifecycle allows, so a
        stale caller changes nothing."""
        if not changed:
            return set()
        cur.execute(
            "UPDATE payments p SET status = c.status, failure_reason = c.failure_reason, settled_at = c.settled_at, "
            "refunded_fen = c.refunded_fen, refund_requested_reason = c.refund_requested_reason, updated_at = %s, "
            "method_token = NULL "
            "FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::bigint[], %s::text[], %s::text[]) "
            "AS c(payment_id, status, failure_reason, settled_at, refunded_fen, refund_requested_reason, sources) "
            "WHERE p.payment_id = c.payment_id AND p.status = ANY(string_to_array(c.sources, ',')) "
            "RETURNING p.payment_id::text",
            (
                now,
                pg_array(p.payment_id for p in changed), pg_array(p.status.value for p in changed),
                pg_array(p.failure_reason for p in changed), pg_array(p.settled_at for p in changed),
                pg_array(p.refunded_fen for p in changed), pg_array(p.refund_requested_reason for p in changed),
                pg_array(",".join(sorted(sources_of(p.status))) for p in changed),
            ),
        )
        return {r["payment_id"] for r in cur.fetchall()}

    def request_refund(self, cur: psycopg.Cursor, payment_id: str, reason: str, now: dt.datetime) -> None:
        cur.execute(
            "UPDATE payments SET refund_requested_reason = %s, updated_at = %s "
            "WHERE payment_id = %s AND refund_requested_reason IS NULL",
            (reason, now, payment_id),
        )

    def return_charges(self, cur: psycopg.Cursor, payment_ids: Sequence[str], reason: str,
                       now: dt.datetime) -> None:
        """Asks for the refund of charges made for FAILED payments, whatever
        was asked before: a refund asked for while the payment was pending
        found nothing captured, and this one supersedes it."""
        if not payment_ids:
            return
        cur.execute(
            "UPDATE payments SET refund_requested_reason = %s, updated_at = %s "
            "WHERE payment_id = ANY(%s::uuid[]) AND status = 'FAILED'",
            (reason, now, pg_array(payment_ids)), prepare=False,
        )

    def save_charge_given_back(self, cur: psycopg.Cursor, payment: Payment, now: dt.datetime) -> bool:
        """Writes what a FAILED payment's charge made after its failure gave
        back (payments.charge_given_back); False if the payment is not FAILED."""
        cur.execute(
            "UPDATE payments SET refunded_after_failure_fen = %s, refunded_after_failure_at = %s, "
            "refund_requested_reason = %s, updated_at = %s WHERE payment_id = %s AND status = 'FAILED' "
            "RETURNING 1",
            (payment.refunded_after_failure_fen, payment.refunded_after_failure_at, payment.refund_requested_reason,
             now, payment.payment_id),
        )
        return cur.fetchone() is not None

    def forget_refund_request(self, cur: psycopg.Cursor, payment_id: str, now: dt.datetime) -> None:
        cur.execute("UPDATE payments SET refund_requested_reason = NULL, updated_at = %s WHERE payment_id = %s",
                    (now, payment_id))

    def count_unknown(self, cur: psycopg.Cursor) -> int:
        cur.execute("SELECT count(*) AS n FROM payments WHERE status = 'UNKNOWN'")
        return cur.fetchone()["n"]

    # Refunds.

    def insert_refund(self, cur: psycopg.Cursor, *, refund_id: str, payment_id: str, amount_fen: int, reason: str,
                      provider_reference: str, refunded_at: dt.datetime) -> None:
        cur.execute(
            "INSERT INTO refunds (refund_id, payment_id, amount_fen, reason, provider_reference, refunded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (refund_id, payment_id, amount_fen, reason, provider_reference, refunded_at),
        )

    # The ledger.

    def post_entries(self, cur: psycopg.Cursor, entries: Iterable[JournalEntry], now: dt.datetime) -> None:
        entries = list(entries)
        if not entries:
            return
        # One statement per table for the batch: row by row, each row waits for
        # the database, and in the eventlet worker each wait is a hub switch.
        cur.execute(
            "INSERT INTO journal_entries (entry_id, kind, payment_id, refund_id, effective_at, posted_at) "
            "SELECT *, %s FROM unnest(%s::uuid[], %s::text[], %s::uuid[], %s::uuid[], %s::timestamptz[])",
            (now, pg_array(e.entry_id for e in entries), pg_array(e.kind.value for e in entries),
             pg_array(e.payment_id for e in entries), pg_array(e.refund_id for e in entries),
             pg_array(e.effective_at for e in entries)),
        )
        lines = [(e.entry_id, n, line.account, line.side.value, line.amount_fen)
                 for e in entries for n, line in enumerate(e.lines, start=1)]
        cur.execute(
            "INSERT INTO journal_lines (entry_id, line_no, account, side, amount_fen) "
            "SELECT * FROM unnest(%s::uuid[], %s::smallint[], %s::text[], %s::text[], %s::bigint[])",
            [pg_array(column) for column in zip(*lines)],
        )

    def accounts(self, cur: psycopg.Cursor) -> list[str]:
        cur.execute("SELECT code FROM ledger_accounts ORDER BY code")
        return [r["code"] for r in cur.fetchall()]

    def account_totals(self, cur: psycopg.Cursor) -> list[tuple[str, int, int]]:
        cur.execute(
            "SELECT account, coalesce(sum(amount_fen) FILTER (WHERE side = 'debit'), 0) AS debit, "
            "coalesce(sum(amount_fen) FILTER (WHERE side = 'credit'), 0) AS credit "
            "FROM journal_lines GROUP BY account"
        )
        return [(r["account"], int(r["debit"]), int(r["credit"])) for r in cur.fetchall()]

    def ledger_movements(self, cur: psycopg.Cursor, start: dt.datetime, end: dt.datetime) -> list[Movement]:
        """The ledger's money movements at the provider dated in [start, end),
        each with the reason of its payment's refund, if any (movement_reason)."""
        cur.execute(
            "SELECT e.kind, e.payment_id::text AS payment_id, coalesce(p.provider_reference, '') AS reference, "
            "(SELECT sum(l.amount_fen) FROM journal_lines l WHERE l.entry_id = e.entry_id AND l.side = 'debit') "
            "AS amount_fen, r.reason AS refund_reason "
            "FROM journal_entries e JOIN payments p ON p.payment_id = e.payment_id "
            "LEFT JOIN refunds r ON r.payment_id = e.payment_id "
            "WHERE e.effective_at >= %s AND e.effective_at < %s AND e.kind = ANY(%s)",
            (start, end, [kind.value for kind in MOVEMENT_OF_ENTRY]),
        )
        movements = []
        for r in cur.fetchall():
            kind = MOVEMENT_OF_ENTRY[EntryKind(r["kind"])]
            movements.append(Movement(kind, r["payment_id"], r["reference"], int(r["amount_fen"]),
                                      movement_reason(kind, r["refund_reason"])))
        return movements
