"""Texts to patients about their bookings: recorded once, sent, tried again.

Identity's worker hands each ``SessionSuspended`` to ``NoticeStore.record``
inside the transaction that writes the event's inbox row: one row of
``patient_notices`` per cancelled booking (``ON CONFLICT (booking_id) DO
NOTHING``), pending when the booking's patient has an account with a phone
number, skipped otherwise. A redelivered event is a duplicate in the inbox; the
same booking told again under another event id finds its row: nothing more is
sent either way.

``NoticeSender.send`` sends one pending notice after that commit, under the
row's lock (``FOR UPDATE SKIP LOCKED``: two workers never send one notice at
once), and in the same transaction writes what came of it: sent; or, when the
SMS gateway failed, the attempt and when to try again (``NoticeRetry``), or,
past the last attempt, given up. The worker's timer sends those due. A worker
that dies after the gateway took a text but before its commit leaves the
notice pending: it is sent again with the same request id (its
``Idempotency-Key``), which the gateway drops as a repeat.

The phone number is read from ``accounts`` when sending, never stored here,
never logged but masked.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from tuoguan_common import metrics
from tuoguan_common.db import Database

from .domain.accounts import PATIENT_PHONE
from .domain.notices import SESSION_SUSPENDED, NoticeRetry, PatientNotice
from .exceptions import SmsUnavailable

log = logging.getLogger(__name__)

# What became of a notice (tuoguan_identity_patient_notices_total's outcomes).
OUTCOMES = ("sent", "retrying", "given_up", "no_phone", "no_details")
DONE_KEPT = dt.timedelta(days=32)


@dataclass(frozen=True)
class Recorded:
    booking_id: str
    status: str  # pending or skipped


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class NoticeStore:
    def __init__(self, database: Database):
        self.db = database

    def phones(self, cur: psycopg.Cursor, patient_ids: list[str]) -> dict[str, str]:
        """account id -> phone number of the patients' accounts that have one."""
        ids = [key for key in (_uuid(p) for p in patient_ids) if key is not None]
        if not ids:
            return {}
        cur.execute("SELECT id, login FROM accounts WHERE id = ANY(%s) AND 'patient' = ANY(roles)", (ids,))
        return {str(r["id"]): r["login"] for r in cur.fetchall() if PATIENT_PHONE.fullmatch(r["login"])}

    def record_suspension(self, cur: psycopg.Cursor, event, now: dt.datetime) -> list[Recorded]:
        """One notice per booking ``event`` (a ``SessionSuspended``) cancelled
        that has none yet; returns those it wrote."""
        phones = self.phones(cur, [b.patient_id for b in event.bookings])
        rows = []
        for booking in event.bookings:
            notice = PatientNotice(booking_id=booking.booking_id, service_date=event.service_date,
                                   period=event.period, department=event.department_name, doctor=event.doctor_name,
                                   refund_due=booking.refund_due, kind=SESSION_SUSPENDED)
            reachable = booking.patient_id in phones
            rows.append({"booking_id": booking.booking_id, "kind": notice.kind,
                         "account_id": _uuid(booking.patient_id), "params": Jsonb(notice.params()),
                         "status": "pending" if reachable else "skipped",
                         "skip_reason": None if reachable else "no_phone",
                         "next_attempt_at": now if reachable else None, "now": now})
        recorded = []
        for row in rows:
            cur.execute(
                "INSERT INTO patient_notices (booking_id, kind, account_id, params, status, skip_reason, "
                "next_attempt_at, created_at, done_at) VALUES (%(booking_id)s, %(kind)s, %(account_id)s, "
                "%(params)s, %(status)s, %(skip_reason)s, %(next_attempt_at)s, %(now)s, "
                "CASE WHEN %(status)s = 'pending' THEN NULL ELSE %(now)s::timestamptz END) "
                "ON CONFLICT (booking_id) DO NOTHING RETURNING booking_id, status", row)
            found = cur.fetchone()
            if found is not None:
                recorded.append(Recorded(found["booking_id"], found["status"]))
        return recorded

    def due(self, now: dt.datetime, limit: int) -> list[str]:
        with self.db.transaction() as cur:
            cur.execute("SELECT booking_id FROM patient_notices WHERE status = 'pending' AND next_attempt_at <= %s "
                        "ORDER BY next_attempt_at LIMIT %s", (now, limit))
            return [r["booking_id"] for r in cur.fetchall()]

    def pending(self) -> int:
        with self.db.transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM patient_notices WHERE status = 'pending'")
            return cur.fetchone()["n"]

    def forget_done(self, now: dt.datetime) -> int:
        """Notices done (sent, given up, skipped) longer ago than the inbox keeps
        an event's row and a month beyond: a redelivery never comes that late."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM patient_notices WHERE status <> 'pending' AND done_at < %s",
                        (now - DONE_KEPT,))
            return cur.rowcount


class NoticeSender:
    """Sends pending notices through the notification port, one at a time under its row's lock."""

    def __init__(self, store: NoticeStore, notifier, retry: NoticeRetry):
        self.store = store
        self.notifier = notifier
        self.retry = retry

    def send(self, booking_id: str, now: dt.datetime) -> str | None:
        """Sends the notice if it is pending and due (and no other worker is
        sending it); returns its outcome, None when it had nothing to do."""
        with self.store.db.transaction() as cur:
            cur.execute(
                "SELECT n.booking_id, n.kind, n.params, n.attempts, a.login AS phone FROM patient_notices n "
                "LEFT JOIN accounts a ON a.id = n.account_id "
                "WHERE n.booking_id = %s AND n.status = 'pending' AND n.next_attempt_at <= %s "
                "FOR UPDATE OF n SKIP LOCKED", (booking_id, now))
            row = cur.fetchone()
            if row is None:
                return None
            notice = PatientNotice.from_params(row["booking_id"], row["kind"], row["params"])
            phone = row["phone"]
            if phone is None or not PATIENT_PHONE.fullmatch(phone):
                # The account went (or its login changed) since the notice was recorded.
                cur.execute("UPDATE patient_notices SET status = 'skipped', skip_reason = 'no_phone', "
                            "next_attempt_at = NULL, done_at = %s WHERE booking_id = %s", (now, booking_id))
                outcome = "no_phone"
            else:
                outcome = self._send(cur, notice, phone, row["attempts"] + 1, now)
        metrics.IDENTITY_PATIENT_NOTICES.labels(notice.kind, outcome).inc()
        return outcome

    def _send(self, cur: psycopg.Cursor, notice: PatientNotice, phone: str, attempt: int, now: dt.datetime) -> str:
        try:
            self.notifier.send_notice(phone, notice)
        except SmsUnavailable:
            again = self.retry.after_failure(attempt, now)
            extra = {"booking_id": notice.booking_id, "kind": notice.kind, "attempt": attempt}
            if again is None:
                cur.execute("UPDATE patient_notices SET status = 'given_up', attempts = %s, next_attempt_at = NULL, "
                            "last_error = 'sms_unavailable', done_at = %s WHERE booking_id = %s",
                            (attempt, now, notice.booking_id))
                # Nobody told the patient: an operator's turn (TuoguanPatientNoticesGivenUp).
                log.error("patient notice given up: the SMS gateway failed every attempt", extra=extra)
                return "given_up"
            cur.execute("UPDATE patient_notices SET attempts = %s, next_attempt_at = %s, "
                        "last_error = 'sms_unavailable' WHERE booking_id = %s", (attempt, again, notice.booking_id))
            log.warning("patient notice not sent; tried again later",
                        extra={**extra, "retry_in_seconds": round((again - now).total_seconds(), 3)})
            return "retrying"
        cur.execute("UPDATE patient_notices SET status = 'sent', attempts = %s, next_attempt_at = NULL, "
                    "last_error = NULL, done_at = %s WHERE booking_id = %s", (attempt, now, notice.booking_id))
        return "sent"


def count_from_zero() -> None:
    """Every series exists from the worker's start, at 0, so an alert sees the first give-up as a rise."""
    for outcome in OUTCOMES:
        metrics.IDENTITY_PATIENT_NOTICES.labels(SESSION_SUSPENDED, outcome)
