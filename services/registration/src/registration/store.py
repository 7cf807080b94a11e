"""All SQL of registration's own tables, its outbox and its idempotency keys.

Locking, so that nothing deadlocks and no place is counted twice:

* a slot's row guards the counters and the status of every booking in it:
  whatever moves a booking in or out of HELD/CONFIRMED locks the slot first
  (several slots: in id order), then the bookings, then the session;
* holds go in batches (group commit): a batch locks its patients (advisory
  locks, in hash order), then its slots (in id order), so two batches, or a
  batch and a cancellation, always queue in the same order; the rules count
  each place against the locked counters, so none is counted twice;
* a patient's holds are serialised by the advisory lock on the patient, so two
  concurrent holds cannot both pass the patient rules.
"""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Callable

import psycopg
from google.protobuf.message import Message
from tuoguan.registration.v1 import events_pb2 as events
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common import outbox
from tuoguan_common.outbox import Idempotent, IdempotencyConflict, KeyBatch
from tuoguan_common.db import Database, pg_array
from tuoguan_common.paging import Page

from . import messages
from .domain import rules
from .domain.model import ACTIVE, STANDING, BookingStatus, PatientBooking, Period, Refusal, SlotState
from .domain.policy import BookingPolicy
from .domain.schedule import PlannedSession, PublishedSession, Template, not_yet_published, overlap_problem
from .exceptions import BookingRefused, TemplateExists, TemplateOverlaps, not_found

Row = dict[str, Any]

# Namespace of registration's advisory locks on patients (the first key of
# pg_advisory_xact_lock(int, int)); the second is a hash of the patient id.
PATIENT_LOCK_SPACE = 0x5245
# The patient rules look back over a day at most (one booking per department
# per service day); older bookings never matter.
RULES_LOOK_BACK = dt.timedelta(days=1)
MAX_LISTED_SLOTS = 5000

_ACTIVE = [str(s) for s in ACTIVE]
_HELD = [str(BookingStatus.HELD)]
_STANDING = [str(s) for s in STANDING]


BOOKING_VIEW = """
SELECT b.*, d.name AS doctor_name, dep.name AS department_name, se.suspend_reason AS session_suspend_reason
FROM bookings b JOIN doctors d ON d.id = b.doctor_id JOIN departments dep ON dep.id = b.department_id
JOIN sessions se ON se.id = b.session_id
"""

# A session with its places. ``held`` counts the holds still in force at
# %(now)s: an unpaid hold past its time no longer counts even before the
# expiry timer has given its place back (the slots' ``held`` counter still
# has it until then). ``booked`` is the slots' counter (confirmed, checked in,
# no-show). Callers add WHERE, GROUP BY se.id, d.name and ORDER BY.
SESSION_VIEW = """
SELECT se.id, se.doctor_id, se.department_id, se.service_date, se.period, se.status, se.suspend_reason,
       d.name AS doctor_name, coalesce(sum(s.capacity), 0)::int AS capacity,
       coalesce(sum(s.booked), 0)::int AS booked,
       (SELECT count(*) FROM bookings h
        WHERE h.session_id = se.id AND h.status = 'HELD' AND h.hold_expires_at > %(now)s)::int AS held,
       min(s.starts_at) AS starts_at, max(s.ends_at) AS ends_at
FROM sessions se JOIN doctors d ON d.id = se.doctor_id LEFT JOIN slots s ON s.session_id = se.id
"""

# A batch's patients, each locked once and all in one order.
LOCK_PATIENTS = """
SELECT pg_advisory_xact_lock(%s, h) FROM (SELECT DISTINCT hashtext(p) AS h FROM unnest(%s::text[]) p ORDER BY h) l
"""

# The slots a batch holds places in, locked in id order: their counters are
# read once and the batch's rules count against them.
SLOTS_FOR_HOLD = """
SELECT s.id, s.session_id, s.doctor_id, s.department_id, s.service_date, s.period, s.starts_at, s.ends_at,
       s.capacity, s.booked, s.held, s.fee_fen, s.released_at, s.suspended,
       d.name AS doctor_name, dep.name AS department_name
FROM slots s JOIN doctors d ON d.id = s.doctor_id JOIN departments dep ON dep.id = s.department_id
WHERE s.id = ANY(%s::uuid[])
ORDER BY s.id
FOR UPDATE OF s
"""

PATIENTS_STANDING_BOOKINGS = """
SELECT id, patient_id, status, department_id, service_date, starts_at, ends_at FROM bookings
WHERE patient_id = ANY(%s::text[]) AND status IN ('HELD', 'CONFIRMED', 'CHECKED_IN') AND ends_at > %s
"""

# The places the batch's rules granted, under the locks its first round took.
TAKE_PLACES = """
UPDATE slots s SET held = s.held + t.n FROM unnest(%s::uuid[], %s::int[]) AS t(id, n) WHERE s.id = t.id
"""

# The batch's new bookings in one statement: what a booking copies from its
# slot is read from the (locked) slot row, not sent again.
INSERT_HELD_BOOKINGS = """
INSERT INTO bookings (id, booking_number, patient_id, slot_id, session_id, doctor_id, department_id, service_date,
                      period, starts_at, ends_at, status, fee_fen, hold_expires_at, created_at, updated_at)
SELECT b.id, b.booking_number, b.patient_id, s.id, s.session_id, s.doctor_id, s.department_id, s.service_date,
       s.period, s.starts_at, s.ends_at, 'HELD', s.fee_fen, %(hold_expires_at)s, %(now)s, %(now)s
FROM unnest(%(ids)s::uuid[], %(numbers)s::text[], %(patients)s::text[], %(slots)s::uuid[])
     AS b(id, booking_number, patient_id, slot_id)
JOIN slots s ON s.id = b.slot_id
"""

LOCK_SLOTS_OF_BOOKINGS = """
SELECT id FROM slots WHERE id IN (SELECT slot_id FROM bookings WHERE id = ANY(%s::uuid[])) ORDER BY id FOR UPDATE
"""

# Ends bookings that hold a place and gives their places back, in one
# statement; a paid booking's fee (confirmed, or checked in before a
# suspension) is due back (a free booking has none).
# Callers hold the slots' locks (LOCK_SLOTS_OF_BOOKINGS).
END_BOOKINGS = """
WITH ended AS (
    UPDATE bookings b
    SET status = %(status)s, cancel_reason = %(reason)s,
        refund_due = (v.status IN ('CONFIRMED', 'CHECKED_IN') AND b.fee_fen > 0),
        ended_at = %(now)s, updated_at = %(now)s
    FROM (SELECT id, status FROM bookings
          WHERE id = ANY(%(ids)s::uuid[]) AND status = ANY(%(from_statuses)s) FOR UPDATE) v
    WHERE b.id = v.id
    RETURNING b.id, b.patient_id, b.slot_id, b.payment_id, b.fee_fen, b.refund_due, v.status AS previous_status
), freed AS (
    UPDATE slots s SET held = s.held - c.held, booked = s.booked - c.booked
    FROM (SELECT slot_id, count(*) FILTER (WHERE previous_status = 'HELD') AS held,
                 count(*) FILTER (WHERE previous_status IN ('CONFIRMED', 'CHECKED_IN')) AS booked
          FROM ended GROUP BY slot_id) c
    WHERE s.id = c.slot_id
)
SELECT * FROM ended
"""

# A batch's confirmations in one statement, with its sessions' and slots' rows
# locked and the bookings read (HELD) under those locks: queue numbers worked
# out in arrival order from each session's last one.
CONFIRM_BOOKINGS = """
WITH queues AS (
    UPDATE sessions s SET last_queue_number = q.last FROM unnest(%(sessions)s::uuid[], %(lasts)s::int[]) AS q(id, last)
    WHERE s.id = q.id
), moved AS (
    UPDATE slots s SET held = s.held - m.n, booked = s.booked + m.n
    FROM unnest(%(slots)s::uuid[], %(counts)s::int[]) AS m(id, n) WHERE s.id = m.id
), confirmed AS (
    UPDATE bookings b SET status = 'CONFIRMED', payment_id = c.payment_id, confirmed_at = %(now)s,
                          updated_at = %(now)s, queue_number = c.queue_number
    FROM unnest(%(ids)s::uuid[], %(payments)s::text[], %(numbers)s::int[]) AS c(id, payment_id, queue_number)
    WHERE b.id = c.id AND b.status = 'HELD'
    RETURNING 1
)
SELECT count(*) AS n FROM confirmed
"""

SAVE_TEMPLATE_BY_ID = """
UPDATE session_templates SET doctor_id = %(doctor_id)s, weekday = %(weekday)s, period = %(period)s,
    start_time = %(start_time)s, end_time = %(end_time)s, slot_minutes = %(slot_minutes)s,
    capacity_per_slot = %(capacity_per_slot)s, active = %(active)s, updated_at = now()
WHERE id = %(template_id)s
RETURNING *
"""

# A new template. Its doctor, weekday and period are checked free first; the
# update on conflict is the seed's, which replaces its own templates.
SAVE_TEMPLATE_BY_KEY = """
INSERT INTO session_templates (doctor_id, weekday, period, start_time, end_time, slot_minutes, capacity_per_slot,
                               active)
VALUES (%(doctor_id)s, %(weekday)s, %(period)s, %(start_time)s, %(end_time)s, %(slot_minutes)s,
        %(capacity_per_slot)s, %(active)s)
ON CONFLICT (doctor_id, weekday, period) DO UPDATE SET
    start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, slot_minutes = EXCLUDED.slot_minutes,
    capacity_per_slot = EXCLUDED.capacity_per_slot, active = EXCLUDED.active, updated_at = now()
RETURNING *
"""


OTHER_ACTIVE_TEMPLATES = """
SELECT period, start_time, end_time FROM session_templates
WHERE doctor_id = %(doctor_id)s AND weekday = %(weekday)s AND active
  AND CASE WHEN %(template_id)s::uuid IS NULL THEN period <> %(period)s ELSE id <> %(template_id)s::uuid END
"""


def _slot_state(row: Row) -> SlotState:
    return SlotState(
        slot_id=str(row["id"]), department_id=str(row["department_id"]), service_date=row["service_date"],
        starts_at=row["starts_at"], ends_at=row["ends_at"], capacity=row["capacity"], booked=row["booked"],
        held=row["held"], released_at=row["released_at"], suspended=row["suspended"],
    )


def _patient_booking(row: Row) -> PatientBooking:
    return PatientBooking(
        booking_id=str(row["id"]), status=BookingStatus(row["status"]), department_id=str(row["department_id"]),
        service_date=row["service_date"], starts_at=row["starts_at"], ends_at=row["ends_at"],
    )


@dataclass(frozen=True)
class HoldRequest:
    """One patient's HoldSlot, parsed, as a batch carries it."""

    idem: Idempotent
    patient_id: str
    slot_id: str
    # The caller's trace, for the event: another caller's thread may write the batch.
    trace_carrier: dict | None = None


def _new_booking(slot: Row, patient_id: str, sequence: int, policy: BookingPolicy, now: dt.datetime) -> Row:
    return {
        **slot, "id": str(uuid.uuid4()), "slot_id": str(slot["id"]), "patient_id": patient_id,
        "booking_number": booking_number(slot["service_date"], sequence),
        "status": BookingStatus.HELD, "hold_expires_at": policy.hold_expires_at(now), "queue_number": None,
        "cancel_reason": "", "refund_due": False, "payment_id": None, "created_at": now, "refunded_at": None,
    }


def _held_event(booking: Row, response: pb.HoldSlotResponse) -> events.SlotHeld:
    return events.SlotHeld(booking_id=booking["id"], patient_id=booking["patient_id"], slot_id=booking["slot_id"],
                           fee_fen=booking["fee_fen"], hold_expires_at=response.booking.hold_expires_at)


def booking_number(service_date: dt.date, sequence: int) -> str:
    """The number on the patient's slip: the visit's date and a running number."""
    return f"{service_date:%Y%m%d}-{sequence:06d}"


def as_uuid(value: str) -> str | None:
    """The id in canonical form, or None when it is not one (events from outside)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


class Store:
    def __init__(self, database: Database):
        self.db = database

    # Departments, doctors and fees.

    def list_departments(self) -> list[Row]:
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM departments ORDER BY code")
            return cur.fetchall()

    def list_doctors(self, department_id: str | None) -> list[Row]:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT d.*, f.fee_fen FROM doctors d JOIN title_fees f ON f.title = d.title "
                "WHERE %(department)s::uuid IS NULL OR d.department_id = %(department)s ORDER BY d.staff_code",
                {"department": department_id},
            )
            return cur.fetchall()

    def unknown(self, department_id: str | None = None, doctor_id: str | None = None) -> str | None:
        """"department" or "doctor" when the one given (if any) is not in the catalogue; None when both are."""
        with self.db.transaction() as cur:
            cur.execute("SELECT %(department)s::uuid IS NULL OR EXISTS (SELECT 1 FROM departments WHERE "
                        "id = %(department)s) AS department, %(doctor)s::uuid IS NULL OR EXISTS "
                        "(SELECT 1 FROM doctors WHERE id = %(doctor)s) AS doctor",
                        {"department": department_id, "doctor": doctor_id})
            known = cur.fetchone()
        return next((kind for kind in ("department", "doctor") if not known[kind]), None)

    def save_department(self, cur: psycopg.Cursor, code: str, name: str, name_en: str) -> str:
        cur.execute(
            "INSERT INTO departments (code, name, name_en) VALUES (%s, %s, %s) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en RETURNING id",
            (code, name, name_en),
        )
        return str(cur.fetchone()["id"])

    def save_title_fee(self, cur: psycopg.Cursor, title: str, fee_fen: int) -> None:
        cur.execute(
            "INSERT INTO title_fees (title, fee_fen) VALUES (%s, %s) "
            "ON CONFLICT (title) DO UPDATE SET fee_fen = EXCLUDED.fee_fen",
            (title, fee_fen),
        )

    def save_doctor(self, cur: psycopg.Cursor, staff_code: str, department_id: str, name: str, title: str,
                    speciality: str, speciality_en: str = "") -> str:
        cur.execute(
            "INSERT INTO doctors (staff_code, department_id, name, title, speciality, speciality_en) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (staff_code) DO UPDATE SET department_id = EXCLUDED.department_id, name = EXCLUDED.name, "
            "title = EXCLUDED.title, speciality = EXCLUDED.speciality, speciality_en = EXCLUDED.speciality_en "
            "RETURNING id",
            (staff_code, department_id, name, title, speciality, speciality_en),
        )
        return str(cur.fetchone()["id"])

    # Session templates.

    def save_template(self, cur: psycopg.Cursor, fields: dict[str, Any], *, replace: bool = False) -> Row:
        """Edits the template of the id given, or creates one. A new one for a
        doctor, weekday and period that already has one is refused (the office
        edits that one by its id) unless ``replace`` (the seed's data, loaded
        again, replaces its own)."""
        # The doctor's row serialises saves of the doctor's templates: two at
        # once would each pass the overlap check against the other. NO KEY:
        # publishing's foreign keys to the doctor do not wait on it.
        cur.execute("SELECT 1 FROM doctors WHERE id = %s FOR NO KEY UPDATE", (fields["doctor_id"],))
        if cur.fetchone() is None:
            raise not_found("doctor")
        fields = {**fields, "template_id": fields.get("template_id")}
        if fields["template_id"]:
            cur.execute("SELECT 1 FROM session_templates WHERE id = %(template_id)s", fields)
            if cur.fetchone() is None:
                raise not_found("template")
            cur.execute(
                "SELECT 1 FROM session_templates WHERE doctor_id = %(doctor_id)s AND weekday = %(weekday)s "
                "AND period = %(period)s AND id <> %(template_id)s",
                fields,
            )
            if cur.fetchone() is not None:
                raise TemplateExists()
        elif not replace:
            # Under the doctor's lock: no other save of the doctor's templates can add one meanwhile.
            cur.execute("SELECT id FROM session_templates WHERE doctor_id = %(doctor_id)s AND weekday = %(weekday)s "
                        "AND period = %(period)s", fields)
            if (existing := cur.fetchone()) is not None:
                raise TemplateExists(str(existing["id"]))
        if fields["active"]:
            # The template it edits (the same id; by key, the seed's own it replaces) is not in its way.
            cur.execute(OTHER_ACTIVE_TEMPLATES, fields)
            problem = overlap_problem(fields["start_time"], fields["end_time"],
                                      [(Period(r["period"]), r["start_time"], r["end_time"]) for r in cur.fetchall()])
            if problem is not None:
                raise TemplateOverlaps(*problem)
        if not fields["template_id"]:
            cur.execute(SAVE_TEMPLATE_BY_KEY, fields)
            return cur.fetchone()
        cur.execute(SAVE_TEMPLATE_BY_ID, fields)
        return cur.fetchone()

    def put_template(self, idem: Idempotent, fields: dict[str, Any]) -> pb.PutSessionTemplateResponse:
        def write(cur: psycopg.Cursor) -> pb.PutSessionTemplateResponse:
            row = self.save_template(cur, fields)
            return pb.PutSessionTemplateResponse(template=messages.template(row))

        return idem.run(self.db, write)

    def list_templates(self, doctor_id: str | None) -> list[Row]:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT t.* FROM session_templates t JOIN doctors d ON d.id = t.doctor_id "
                "WHERE %(doctor)s::uuid IS NULL OR t.doctor_id = %(doctor)s "
                "ORDER BY d.staff_code, t.weekday, t.start_time",
                {"doctor": doctor_id},
            )
            return cur.fetchall()

    # Publishing.

    def templates_to_publish(self) -> list[Template]:
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT t.*, d.department_id, f.fee_fen FROM session_templates t "
                "JOIN doctors d ON d.id = t.doctor_id JOIN title_fees f ON f.title = d.title WHERE t.active"
            )
            return [
                Template(str(r["id"]), str(r["doctor_id"]), str(r["department_id"]), r["weekday"], Period(r["period"]),
                         r["start_time"], r["end_time"], r["slot_minutes"], r["capacity_per_slot"], r["fee_fen"])
                for r in cur.fetchall()
            ]

    def publish(self, planned: Sequence[PlannedSession]) -> tuple[int, int]:
        """Creates the planned sessions that do not exist yet, with their slots."""
        if not planned:
            return 0, 0
        sessions = slots = 0
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT template_id, doctor_id, service_date, period FROM sessions "
                "WHERE service_date BETWEEN %s AND %s",
                (min(p.service_date for p in planned), max(p.service_date for p in planned)),
            )
            published = [PublishedSession(None if r["template_id"] is None else str(r["template_id"]),
                                          str(r["doctor_id"]), r["service_date"], Period(r["period"]))
                         for r in cur.fetchall()]
            for p in not_yet_published(planned, published):
                # A concurrent publisher may have made it since: the unique keys decide
                # (doctor, day and period; template and day).
                cur.execute(
                    "INSERT INTO sessions (doctor_id, department_id, template_id, service_date, period, released_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
                    "RETURNING id",
                    (p.doctor_id, p.department_id, p.template_id, p.service_date, p.period, p.released_at),
                )
                created = cur.fetchone()
                if created is None:
                    continue
                cur.executemany(
                    "INSERT INTO slots (session_id, doctor_id, department_id, service_date, period, starts_at, "
                    "ends_at, capacity, fee_fen, released_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(created["id"], p.doctor_id, p.department_id, p.service_date, p.period, s.starts_at, s.ends_at,
                      s.capacity, p.fee_fen, p.released_at) for s in p.slots],
                )
                sessions += 1
                slots += len(p.slots)
        return sessions, slots

    def release_now(self, first: dt.date, last: dt.date, now: dt.datetime) -> int:
        """Opens now the slots of these days still waiting for their release time; returns how many."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE slots SET released_at = %(now)s WHERE service_date BETWEEN %(first)s AND %(last)s "
                        "AND released_at > %(now)s", {"first": first, "last": last, "now": now})
            released = cur.rowcount
            cur.execute("UPDATE sessions SET released_at = %(now)s WHERE service_date BETWEEN %(first)s AND %(last)s "
                        "AND released_at > %(now)s", {"first": first, "last": last, "now": now})
            return released

    # Search and the office's day view.

    def list_slots(self, *, department_id: str | None, doctor_id: str | None, first: dt.date, last: dt.date,
                   now: dt.datetime, only_available: bool) -> list[Row]:
        """Released, open, future slots; one index range per department or doctor."""
        where = ["service_date BETWEEN %(first)s AND %(last)s", "released_at <= %(now)s", "starts_at > %(now)s",
                 "NOT suspended"]
        if department_id:
            where.append("department_id = %(department)s")
        if doctor_id:
            where.append("doctor_id = %(doctor)s")
        if only_available:
            where.append("booked + held < capacity")
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, session_id, doctor_id, department_id, service_date, period, starts_at, ends_at, "
                "capacity, booked, held, fee_fen FROM slots WHERE " + " AND ".join(where)
                + " ORDER BY starts_at, doctor_id LIMIT %(limit)s",
                {"first": first, "last": last, "now": now, "department": department_id, "doctor": doctor_id,
                 "limit": MAX_LISTED_SLOTS},
            )
            return cur.fetchall()

    def list_sessions(self, service_date: dt.date, department_id: str | None, now: dt.datetime,
                      doctor_id: str | None = None) -> list[Row]:
        """Every session of the day, open and suspended, of a department or a doctor when given."""
        with self.db.transaction() as cur:
            cur.execute(
                SESSION_VIEW + "WHERE se.service_date = %(day)s "
                "AND (%(department)s::uuid IS NULL OR se.department_id = %(department)s) "
                "AND (%(doctor)s::uuid IS NULL OR se.doctor_id = %(doctor)s) "
                "GROUP BY se.id, d.name ORDER BY min(s.starts_at), d.name, se.id",
                {"day": service_date, "department": department_id, "doctor": doctor_id, "now": now},
            )
            return cur.fetchall()

    def session_bookings(self, session_id: str, now: dt.datetime) -> tuple[Row, list[Row]] | None:
        """The session and every booking of it in any status, by slot start, queue number, booking number;
        None when there is no such session. One snapshot, so the counts match the list."""
        with self.db.transaction() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(SESSION_VIEW + "WHERE se.id = %(session)s GROUP BY se.id, d.name",
                        {"session": session_id, "now": now})
            session = cur.fetchone()
            if session is None:
                return None
            cur.execute(BOOKING_VIEW + "WHERE b.session_id = %s "
                        "ORDER BY b.starts_at, b.queue_number NULLS LAST, b.booking_number", (session_id,))
            return session, cur.fetchall()

    # Bookings.

    def hold_slots(self, requests: Sequence[HoldRequest], policy: BookingPolicy,
                   now: dt.datetime) -> list[pb.HoldSlotResponse | Exception]:
        """Holds places for a batch of requests, each outcome in the request's place.
        A request repeated within the batch (same patient, same key) goes in a
        later transaction than its first, and so gets the first's answer."""
        outcomes: list[pb.HoldSlotResponse | Exception | None] = [None] * len(requests)
        waiting = list(enumerate(requests))
        while waiting:
            seen: set[tuple[str, str]] = set()
            now_batch, later = [], []
            for i, request in waiting:
                key = (request.idem.owner, request.idem.key)
                (later if key in seen else now_batch).append((i, request))
                seen.add(key)
            for (i, _), outcome in zip(now_batch, self._hold_distinct([r for _, r in now_batch], policy, now)):
                outcomes[i] = outcome
            waiting = later
        return outcomes  # type: ignore[return-value]

    def _hold_distinct(self, requests: Sequence[HoldRequest], policy: BookingPolicy,
                       now: dt.datetime) -> list[pb.HoldSlotResponse | Exception]:
        """Holds places for a batch of patients in one transaction: two round trips and a commit.

        The first round takes the patients' locks, then the slots' (each set in
        one order, so batches never deadlock each other) and reads the slots,
        the patients' bookings and the keys used before (under the patients'
        locks nobody else can use them meanwhile). The rules then run for each
        request in arrival order against the counters and bookings as the
        requests before it left them; the second round writes what they took.
        Each request gets its answer, or the exception it alone raises (a
        refusal, an unknown slot, a key used for another request); refused
        requests leave nothing behind, their keys included: asking again decides again.
        """
        keys = KeyBatch([r.idem for r in requests])
        patients = sorted({r.patient_id for r in requests})
        slot_ids = sorted({r.slot_id for r in requests})
        with self.db.transaction() as cur, cur.connection.pipeline():
            conn = cur.connection
            slots_cur, mine_cur, numbers_cur = conn.cursor(), conn.cursor(), conn.cursor()
            cur.execute(LOCK_PATIENTS, (PATIENT_LOCK_SPACE, pg_array(patients)))
            slots_cur.execute(SLOTS_FOR_HOLD, (pg_array(slot_ids),))
            # Planned for its array each time: after five calls the cached generic
            # plan of this ANY(array) scanned the whole bookings table.
            mine_cur.execute(PATIENTS_STANDING_BOOKINGS, (pg_array(patients), now - RULES_LOOK_BACK), prepare=False)
            numbers_cur.execute("SELECT nextval('booking_numbers') AS n FROM generate_series(1, %s)",
                                (len(requests),))
            keys.read(conn)
            slots = {str(row["id"]): row for row in slots_cur.fetchall()}
            states = {slot_id: _slot_state(row) for slot_id, row in slots.items()}
            standing: dict[str, list[PatientBooking]] = {p: [] for p in patients}
            for row in mine_cur.fetchall():
                standing[row["patient_id"]].append(_patient_booking(row))
            numbers = iter(row["n"] for row in numbers_cur.fetchall())

            outcomes: list[pb.HoldSlotResponse | Exception] = []
            held: list[tuple[Row, HoldRequest]] = []
            answered: list[tuple[Idempotent, pb.HoldSlotResponse]] = []
            for request in requests:
                try:
                    replayed = keys.replay(request.idem)
                except IdempotencyConflict as exc:
                    outcomes.append(exc)
                    continue
                if replayed is not None:
                    outcomes.append(replayed)
                    continue
                slot = slots.get(request.slot_id)
                refusal = None if slot is None else rules.hold_refusal(
                    states[request.slot_id], standing[request.patient_id], policy, now)
                if slot is None or refusal is not None:
                    outcomes.append(not_found("slot") if slot is None else BookingRefused(refusal))
                    continue
                booking = _new_booking(slot, request.patient_id, next(numbers), policy, now)
                states[request.slot_id] = replace(states[request.slot_id], held=states[request.slot_id].held + 1)
                standing[request.patient_id].append(_patient_booking(booking))
                response = pb.HoldSlotResponse(booking=messages.booking(booking))
                held.append((booking, request))
                answered.append((request.idem, response))
                outcomes.append(response)

            if held:
                taken: dict[str, int] = {}
                for booking, _ in held:
                    taken[booking["slot_id"]] = taken.get(booking["slot_id"], 0) + 1
                cur.execute(TAKE_PLACES, (pg_array(taken), pg_array(taken.values())))
                cur.execute(INSERT_HELD_BOOKINGS, {
                    "ids": pg_array(b["id"] for b, _ in held), "numbers": pg_array(b["booking_number"] for b, _ in held),
                    "patients": pg_array(b["patient_id"] for b, _ in held),
                    "slots": pg_array(b["slot_id"] for b, _ in held),
                    "hold_expires_at": policy.hold_expires_at(now), "now": now})
                published: list[tuple[Message, dict | None]] = [
                    (_held_event(booking, response), request.trace_carrier)
                    for (booking, request), (_, response) in zip(held, answered)]
                free = [(booking, request, response) for (booking, request), (_, response) in zip(held, answered)
                        if rules.confirmed_when_held(booking["fee_fen"])]
                if free:
                    queue_numbers = self._confirm(cur, [(booking, None, request.trace_carrier)
                                                        for booking, request, _ in free], published, now)
                    for (_, _, response), number in zip(free, queue_numbers):
                        response.booking.status = pb.BOOKING_STATUS_CONFIRMED
                        response.booking.queue_number = number
                outbox.append_many(cur, published)
                keys.remember(cur, answered)
        return outcomes

    def get_booking(self, booking_id: str) -> Row | None:
        with self.db.transaction() as cur:
            cur.execute(BOOKING_VIEW + "WHERE b.id = %s", (booking_id,))
            return cur.fetchone()

    def get_bookings(self, booking_ids: Sequence[str]) -> list[Row | None]:
        """Many bookings in one query, in the order asked (None: no such booking)."""
        with self.db.transaction() as cur:
            cur.execute(BOOKING_VIEW + "WHERE b.id = ANY(%s::uuid[])", (pg_array(booking_ids),), prepare=False)
            found = {str(r["id"]): r for r in cur.fetchall()}
        return [found.get(booking_id) for booking_id in booking_ids]

    def list_patient_bookings(self, patient_id: str, page: Page) -> tuple[list[Row], str]:
        """A page of the patient's bookings, the latest visit first, and the next page's token."""
        rest, params = page.sql("b.starts_at", "b.id")
        with self.db.transaction() as cur:
            cur.execute(BOOKING_VIEW + f"WHERE b.patient_id = %s {rest}", (patient_id, *params))
            return page.rows_and_token(cur.fetchall(), lambda row: (row["starts_at"], row["id"]))

    def _end_bookings(self, cur: psycopg.Cursor, booking_ids: Sequence[str], status: BookingStatus, reason: str,
                      from_statuses: list[str], now: dt.datetime) -> list[Row]:
        """Ends the bookings still in ``from_statuses`` and gives their places back."""
        if not booking_ids:
            return []
        cur.execute(LOCK_SLOTS_OF_BOOKINGS, (list(booking_ids),))
        cur.execute(END_BOOKINGS, {"ids": list(booking_ids), "status": status, "reason": reason,
                                   "from_statuses": from_statuses, "now": now})
        return cur.fetchall()

    def _lock_booking_slot(self, cur: psycopg.Cursor, booking_id: str) -> Row | None:
        """Locks the booking's slot, then reads the booking as it stands under that lock."""
        cur.execute(LOCK_SLOTS_OF_BOOKINGS, ([booking_id],))
        cur.execute("SELECT * FROM bookings WHERE id = %s", (booking_id,))
        return cur.fetchone()

    def _booking_views(self, cur: psycopg.Cursor, booking_ids: Iterable[str]) -> list[pb.Booking]:
        cur.execute(BOOKING_VIEW + "WHERE b.id = ANY(%s::uuid[]) ORDER BY b.starts_at, b.booking_number",
                    (list(booking_ids),))
        return [messages.booking(r) for r in cur.fetchall()]

    def cancel_booking(self, idem: Idempotent, booking_id: str, reason: str, policy: BookingPolicy,
                       now: dt.datetime, *, by_office: bool = False) -> pb.CancelBookingResponse:
        def write(cur: psycopg.Cursor) -> pb.CancelBookingResponse:
            row = self._lock_booking_slot(cur, booking_id)
            if row is None:
                raise not_found("booking")
            refusal = rules.cancel_refusal(BookingStatus(row["status"]), row["starts_at"], policy, now,
                                           by_office=by_office)
            if refusal is not None:
                raise BookingRefused(refusal)
            (ended,) = self._end_bookings(cur, [booking_id], BookingStatus.CANCELLED, reason, _ACTIVE, now)
            outbox.append(cur, _cancelled_event(ended, reason))
            (view,) = self._booking_views(cur, [booking_id])
            return pb.CancelBookingResponse(booking=view)

        return idem.run(self.db, write)

    def suspend_session(self, idem: Idempotent, session_id: str, reason: str,
                        now: dt.datetime) -> pb.SuspendSessionResponse:
        """Suspends a session: closes its slots and cancels every booking that
        holds a place, and every check-in whose slot has not started yet."""
        def write(cur: psycopg.Cursor) -> pb.SuspendSessionResponse:
            # Locking the slots first waits out holds in flight and keeps the slot-first order.
            cur.execute("SELECT id, ends_at FROM slots WHERE session_id = %s ORDER BY id FOR UPDATE", (session_id,))
            refusal = rules.suspend_refusal(max((r["ends_at"] for r in cur.fetchall()), default=None), now)
            if refusal is not None:
                raise BookingRefused(refusal)
            cur.execute(
                "UPDATE sessions SET status = 'SUSPENDED', suspended_at = %s, suspend_reason = %s "
                "WHERE id = %s AND status = 'OPEN' RETURNING doctor_id, department_id, service_date, period",
                (now, reason, session_id),
            )
            session = cur.fetchone()
            if session is None:
                cur.execute("SELECT 1 FROM sessions WHERE id = %s", (session_id,))
                if cur.fetchone() is None:
                    raise not_found("session")
                raise BookingRefused(Refusal(rules.SESSION_ALREADY_SUSPENDED, "the session is already suspended"))
            cur.execute("UPDATE slots SET suspended = true WHERE session_id = %s", (session_id,))
            # Read under the slots' locks: no check-in or cancellation moves them meanwhile.
            cur.execute("SELECT id, status, starts_at FROM bookings WHERE session_id = %s AND status = ANY(%s)",
                        (session_id, _STANDING))
            standing = cur.fetchall()
            starts = {str(r["id"]): r["starts_at"] for r in standing}
            due = [str(r["id"]) for r in standing
                   if rules.ended_by_suspension(BookingStatus(r["status"]), r["starts_at"], now)]
            ended = self._end_bookings(cur, due, BookingStatus.CANCELLED, "session_suspended", _STANDING, now)
            for row in ended:
                outbox.append(cur, _cancelled_event(row, "session_suspended"))
            # The names the patients' texts give (identity's worker tells them; it has no catalogue).
            cur.execute("SELECT d.name AS doctor_name, dep.name AS department_name FROM doctors d "
                        "JOIN departments dep ON dep.id = %s WHERE d.id = %s",
                        (session["department_id"], session["doctor_id"]))
            names = cur.fetchone() or {"doctor_name": "", "department_name": ""}
            outbox.append(cur, events.SessionSuspended(
                session_id=session_id, doctor_id=str(session["doctor_id"]),
                service_date=session["service_date"].isoformat(), reason=reason,
                cancelled_booking_ids=[str(r["id"]) for r in ended],
                patient_ids=sorted({r["patient_id"] for r in ended}),
                period=str(session["period"]), doctor_name=names["doctor_name"],
                department_name=names["department_name"],
                bookings=[events.SuspendedBooking(
                    booking_id=str(r["id"]), patient_id=r["patient_id"], refund_due=r["refund_due"],
                    fee_fen=r["fee_fen"], starts_at=messages.rfc3339(starts[str(r["id"])])) for r in ended],
            ))
            cur.execute(SESSION_VIEW + "WHERE se.id = %(session)s GROUP BY se.id, d.name",
                        {"session": session_id, "now": now})
            response = pb.SuspendSessionResponse(
                session=messages.session(cur.fetchone()),
                cancelled_bookings=self._booking_views(cur, [str(r["id"]) for r in ended]),
            )
            return response

        return idem.run(self.db, write)

    def _move_booking(self, booking_id: str, decide: Callable[[psycopg.Cursor, Row], rules.Decision],
                      status: BookingStatus, event: Message, now: dt.datetime, *, lock_patient: bool = False) -> Row:
        """A change of a booking that keeps its place (check-in, no-show). It
        moves the booking out of CONFIRMED, so it takes the slot's lock first as
        every writer of a booking's status does: a cancellation in flight then
        reads the booking as this change left it, never half-way. A change
        that reads the patient's other bookings takes the patient's lock
        before the slot's, in the holds' order, so no hold of theirs is
        granted half-way through it."""
        with self.db.transaction() as cur:
            if lock_patient:
                cur.execute("SELECT patient_id FROM bookings WHERE id = %s", (booking_id,))
                if (owner := cur.fetchone()) is None:
                    raise not_found("booking")
                cur.execute(LOCK_PATIENTS, (PATIENT_LOCK_SPACE, pg_array([owner["patient_id"]])))
            row = self._lock_booking_slot(cur, booking_id)
            if row is None:
                raise not_found("booking")
            decision = decide(cur, row)
            if isinstance(decision, Refusal):
                raise BookingRefused(decision)
            if decision == rules.APPLY:
                cur.execute("UPDATE bookings SET status = %s, ended_at = %s, updated_at = %s WHERE id = %s",
                            (status, now, now, booking_id))
                outbox.append(cur, event)
            cur.execute(BOOKING_VIEW + "WHERE b.id = %s", (booking_id,))
            return cur.fetchone()

    def check_in(self, booking_id: str, today: dt.date, now: dt.datetime) -> Row:
        def decide(cur: psycopg.Cursor, row: Row) -> rules.Decision:
            booked_again = booked_over = False
            if row["status"] == BookingStatus.NO_SHOW:
                # What the patient booked since the no-show freed their day and their time,
                # read under the patient's lock: the department again that day, or another
                # visit over this one's time.
                cur.execute(
                    "SELECT coalesce(bool_or(department_id = %(department)s AND service_date = %(day)s), false) "
                    "AS again, coalesce(bool_or(starts_at < %(ends)s AND %(starts)s < ends_at), false) AS over "
                    "FROM bookings WHERE patient_id = %(patient)s AND status = ANY(%(standing)s) AND id <> %(id)s",
                    {"department": row["department_id"], "day": row["service_date"], "starts": row["starts_at"],
                     "ends": row["ends_at"], "patient": row["patient_id"], "standing": _STANDING, "id": booking_id})
                since = cur.fetchone()
                booked_again, booked_over = since["again"], since["over"]
            # The slot's flag, under the slot's lock this change holds: a suspension takes it too.
            cur.execute("SELECT suspended FROM slots WHERE id = %s", (row["slot_id"],))
            return rules.check_in_decision(BookingStatus(row["status"]), row["service_date"], today,
                                           booked_again=booked_again, booked_over=booked_over,
                                           suspended=cur.fetchone()["suspended"])

        return self._move_booking(booking_id, decide, BookingStatus.CHECKED_IN,
                                  events.BookingCheckedIn(booking_id=booking_id), now, lock_patient=True)

    def mark_no_show(self, booking_id: str, now: dt.datetime) -> Row:
        return self._move_booking(
            booking_id, lambda _, r: rules.no_show_decision(BookingStatus(r["status"]), r["starts_at"], now),
            BookingStatus.NO_SHOW, events.BookingMarkedNoShow(booking_id=booking_id), now,
        )

    # Billing's events, applied inside the inbox transaction (nameko_support.handle_event).

    def apply_payments_captured(self, cur: psycopg.Cursor, captured: Sequence[tuple[str, rules.CapturedPayment, dict | None]],
                                now: dt.datetime) -> list[rules.CaptureDecision]:
        """Confirms the held bookings the payments are for, or rejects each
        payment billing must refund; one decision per (booking id, payment,
        trace carrier of its event), in order, each seeing what the ones
        before it decided. Their events continue the carriers' traces."""
        known = {booking_id: as_uuid(booking_id) for booking_id, _, _ in captured}
        ids = sorted({k for k in known.values() if k})
        bookings: dict[str, rules.PaidBooking] = {}
        rows: dict[str, Row] = {}
        if ids:
            # Slots first, in id order, as every writer of bookings locks them.
            cur.execute(LOCK_SLOTS_OF_BOOKINGS, (pg_array(ids),), prepare=False)
            cur.execute("SELECT * FROM bookings WHERE id = ANY(%s::uuid[])", (pg_array(ids),), prepare=False)
            for row in cur.fetchall():
                rows[str(row["id"])] = row
                bookings[str(row["id"])] = rules.PaidBooking(
                    BookingStatus(row["status"]), row["patient_id"], row["fee_fen"], row["payment_id"],
                    row["hold_expires_at"])
        decisions: list[rules.CaptureDecision] = []
        confirmed: list[tuple[Row, str | None, dict | None]] = []
        lapsed: list[str] = []
        published: list[tuple[Message, dict | None]] = []
        for booking_id, payment, carrier in captured:
            booking = known[booking_id]
            decision = rules.capture_decision(bookings.get(booking) if booking else None, payment, now)
            decisions.append(decision)
            if decision == rules.CONFIRM:
                bookings[booking] = replace(bookings[booking], status=BookingStatus.CONFIRMED,
                                            payment_id=payment.payment_id)
                confirmed.append((rows[booking], payment.payment_id, carrier))
            elif isinstance(decision, Refusal):
                if decision.reason == rules.HOLD_ENDED and bookings[booking].status == BookingStatus.HELD:
                    # Its hold ran out before the timer came by: ended here, as the timer would end it.
                    bookings[booking] = replace(bookings[booking], status=BookingStatus.EXPIRED)
                    lapsed.append(booking)
                published.append((events.PaymentRejected(booking_id=booking_id, payment_id=payment.payment_id,
                                                         reason=decision.reason), carrier))
        if confirmed:
            self._confirm(cur, confirmed, published, now)
        if lapsed:
            for row in self._end_bookings(cur, lapsed, BookingStatus.EXPIRED, "expired", _HELD, now):
                published.append((_released_event(row, "expired"), None))
        outbox.append_many(cur, published)
        return decisions

    @staticmethod
    def _confirm(cur: psycopg.Cursor, confirmed: Sequence[tuple[Row, str | None, dict | None]],
                 published: list[tuple[Message, dict | None]], now: dt.datetime) -> list[int]:
        """Confirms held bookings (each once, with the payment of each, None
        for a free one), queue numbers given in their order and returned."""
        # Their sessions next, in id order, before any queue number moves:
        # two batches confirming in the same sessions wait, never deadlock.
        cur.execute("SELECT id, last_queue_number FROM sessions WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
                    (pg_array(sorted({str(row["session_id"]) for row, _, _ in confirmed})),), prepare=False)
        last = {str(r["id"]): r["last_queue_number"] for r in cur.fetchall()}
        moved: dict[str, int] = {}
        numbers = []
        for row, _, _ in confirmed:
            session = str(row["session_id"])
            last[session] += 1
            numbers.append(last[session])
            moved[str(row["slot_id"])] = moved.get(str(row["slot_id"]), 0) + 1
        cur.execute(CONFIRM_BOOKINGS, {
            "sessions": pg_array(last), "lasts": pg_array(last.values()),
            "slots": pg_array(moved), "counts": pg_array(moved.values()),
            "ids": pg_array(row["id"] for row, _, _ in confirmed),
            "payments": pg_array(payment_id for _, payment_id, _ in confirmed),
            "numbers": pg_array(numbers), "now": now})
        if cur.fetchone()["n"] != len(confirmed):
            # The slot locks keep every booking as it was read: this is a bug, and the batch rolls back.
            raise RuntimeError("a booking read as HELD under its slot's lock was not HELD when confirmed")
        for (row, payment_id, carrier), number in zip(confirmed, numbers):
            published.append((events.BookingConfirmed(
                booking_id=str(row["id"]), patient_id=row["patient_id"], slot_id=str(row["slot_id"]),
                payment_id=payment_id or "", queue_number=number,
            ), carrier))
        return numbers

    def apply_payment_failed(self, cur: psycopg.Cursor, booking_id: str, now: dt.datetime) -> bool:
        """Releases the hold whose payment failed; False when it was no longer held."""
        known = as_uuid(booking_id)
        if known is None:
            return False
        ended = self._end_bookings(cur, [known], BookingStatus.EXPIRED, "payment_failed", _HELD, now)
        for row in ended:
            outbox.append(cur, _released_event(row, "payment_failed"))
        return bool(ended)

    def apply_refund_issued(self, cur: psycopg.Cursor, booking_id: str, payment_id: str, now: dt.datetime) -> bool:
        known = as_uuid(booking_id)
        if known is None:
            return False
        cur.execute(
            "UPDATE bookings SET refunded_at = %s, refund_due = false, updated_at = %s "
            "WHERE id = %s AND payment_id = %s AND refunded_at IS NULL RETURNING 1",
            (now, now, known, payment_id),
        )
        return cur.fetchone() is not None

    # Timers.

    def expire_due_holds(self, now: dt.datetime, limit: int = 500) -> int:
        """Returns unpaid holds past their time to stock; how many it released."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id FROM bookings WHERE status = 'HELD' AND hold_expires_at <= %s "
                "ORDER BY hold_expires_at LIMIT %s",
                (now, limit),
            )
            due = [str(r["id"]) for r in cur.fetchall()]
            ended = self._end_bookings(cur, due, BookingStatus.EXPIRED, "expired", _HELD, now)
            for row in ended:
                outbox.append(cur, _released_event(row, "expired"))
            return len(ended)

    def remaining_capacity(self, now: dt.datetime) -> int:
        """Free places over released, open, future slots."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT coalesce(sum(capacity - booked - held), 0)::bigint AS remaining FROM slots "
                "WHERE released_at <= %s AND starts_at > %s AND NOT suspended",
                (now, now),
            )
            return cur.fetchone()["remaining"]


def _cancelled_event(row: Row, reason: str) -> events.BookingCancelled:
    return events.BookingCancelled(
        booking_id=str(row["id"]), patient_id=row["patient_id"], slot_id=str(row["slot_id"]), reason=reason,
        refund_due=row["refund_due"], payment_id=row["payment_id"] or "",
        fee_fen=row["fee_fen"],
    )


def _released_event(row: Row, reason: str) -> events.HoldReleased:
    return events.HoldReleased(booking_id=str(row["id"]), patient_id=row["patient_id"], slot_id=str(row["slot_id"]),
                               reason=reason)
