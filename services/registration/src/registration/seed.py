"""Demo data: ``python -m registration.seed``.

Departments of a cancer hospital, their doctors and fees, weekly templates,
and two weeks of schedule released at once. Running it again changes nothing
that is already there.

Publishing opens days from tomorrow on (the hospital's rule), which would
leave the office's day view empty on the day a developer runs ``make up``:
so the demo data also gives two doctors a session today, timed from the
moment the seed runs (``"today"`` in seed_data.json): one already started,
with bookings on its started slots (no-show), and one later today, with
bookings (check-in). They are free clinics, so their demo bookings are
confirmed as they are held, with nothing for billing to take or refund.
A doctor who has a session today already gets none: seeding again the same
day adds nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path

from tuoguan.registration.v1 import registration_pb2 as pb

from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database, migrate_service
from tuoguan_common.logs import setup_logging
from tuoguan_common.outbox import utcnow

from .config import RegistrationConfig
from .domain import schedule
from .domain.model import Period
from .domain.policy import BookingPolicy, ReleasePolicy
from .publishing import publish_schedule
from .store import HoldRequest, Idempotent, Store

log = logging.getLogger(__name__)

SEED_DATA = Path(__file__).resolve().parent / "seed_data.json"
SEED_DAYS = 14
# The demo bookings' patients: walk-ins with no account (the office sees
# patient ids only), new ones each day so yesterday's bookings never count
# against today's rules.
DEMO_PATIENTS = uuid.UUID("6f1d7c1e-5b8a-4f0e-9d3a-2c7e4b9a1d55")


def seed(database: Database, config: RegistrationConfig, data: dict,
         now: dt.datetime | None = None) -> tuple[int, int]:
    """Writes the reference data and templates, publishes, and gives today its
    demo sessions; returns the sessions and slots it created."""
    now = now or utcnow()
    store = Store(database)
    with database.transaction() as cur:
        for title, fee_fen in data["title_fees_fen"].items():
            store.save_title_fee(cur, title, fee_fen)
        for dep in data["departments"]:
            department_id = store.save_department(cur, dep["code"], dep["name"], dep["name_en"])
            for doc in dep["doctors"]:
                doctor_id = store.save_doctor(cur, doc["staff_code"], department_id, doc["name"], doc["title"],
                                              doc["speciality"], doc.get("speciality_en", ""))
                for session in doc["sessions"]:
                    weekday, period = session.split()
                    times = data["periods"][period]
                    fields = {
                        "template_id": None, "doctor_id": doctor_id, "weekday": int(weekday),
                        "period": Period(period), "start_time": _time(times["start"]),
                        "end_time": _time(times["end"]), "slot_minutes": times["slot_minutes"],
                        "capacity_per_slot": times["capacity_per_slot"], "active": True,
                    }
                    problem = schedule.template_problem(fields["start_time"], fields["end_time"],
                                                        fields["slot_minutes"], fields["capacity_per_slot"])
                    if problem is not None:
                        raise SystemExit(f"seed data, {doc['staff_code']} {session}: {problem[0]} {problem[1]}")
                    # Seeding again replaces the seed's own templates.
                    store.save_template(cur, fields, replace=True)
    sessions, slots = publish_schedule(store, config.release, now, days_ahead=SEED_DAYS, release_now=True)
    today_sessions, today_slots = seed_today(store, config.release, config.booking, data["today"], now)
    return sessions + today_sessions, slots + today_slots


def seed_today(store: Store, release: ReleasePolicy, booking: BookingPolicy, demo: dict,
               now: dt.datetime) -> tuple[int, int]:
    """Today's demo sessions and bookings (see the module's docstring); returns the sessions and slots created."""
    today = release.local_date(now)
    step = dt.timedelta(minutes=demo["slot_minutes"])
    length = step * demo["slots"]
    day_start = release.local_moment(today, dt.time(0))
    day_end = release.local_moment(today + dt.timedelta(days=1), dt.time(0))
    current = day_start + (now - day_start) // step * step  # the start of the slot now running
    # Started two slots ago (or at midnight): its first slots have begun.
    started = max(day_start, current - 2 * step)
    plans = [("started", started, min(day_end, started + length)),
             ("later", current + step, min(day_end, current + step + length))]
    # Released as if published in time, so patients could have booked any of its slots.
    released_at = release.local_moment(today - dt.timedelta(days=release.days_ahead), release.release_time)
    doctors = {d["staff_code"]: d for d in store.list_doctors(None)}
    sessions = slots = bookings = 0
    for kind, begin, end in plans:
        doctor = doctors[demo[kind]["staff_code"]]
        doctor_id = str(doctor["id"])
        times = []
        while begin + step * (len(times) + 1) <= end:
            start = begin + step * len(times)
            times.append(schedule.PlannedSlot(start, start + step, demo["capacity_per_slot"]))
        if not times:
            log.info("no demo session later today: too close to midnight", extra={"doctor": demo[kind]["staff_code"]})
            continue
        if store.list_sessions(today, None, now, doctor_id=doctor_id):
            continue  # seeded earlier today, or the doctor has a session of their own
        planned = schedule.PlannedSession(None, doctor_id, str(doctor["department_id"]), today,
                                          _period(begin - day_start), released_at, demo["fee_fen"], tuple(times))
        created = store.publish([planned])
        sessions, slots = sessions + created[0], slots + created[1]
        if created[0]:
            bookings += _book(store, booking, demo[kind]["bookings"], doctor_id, today, released_at, now,
                              started_only=kind == "started")
    log.info("seeded today's demo sessions", extra={"sessions_created": sessions, "bookings_created": bookings})
    return sessions, slots


def _book(store: Store, policy: BookingPolicy, count: int, doctor_id: str, today: dt.date,
          released_at: dt.datetime, now: dt.datetime, *, started_only: bool) -> int:
    """Books ``count`` walk-in patients onto the doctor's session today, each an
    hour before their slot (or now): on its started slots, or on its first one."""
    # The slots as they were listed when released: all of them, started or not.
    listed = store.list_slots(department_id=None, doctor_id=doctor_id, first=today, last=today,
                              now=released_at, only_available=True)
    targets = [s for s in listed if s["starts_at"] <= now] if started_only else listed[:1]
    requests = []
    for n in range(min(count, sum(s["capacity"] for s in targets))):
        slot = targets[n % len(targets)]
        patient = str(uuid.uuid5(DEMO_PATIENTS, f"{today}/{doctor_id}/{n}"))
        request = pb.HoldSlotRequest(slot_id=str(slot["id"]), idempotency_key=f"seed-{today}-{n}")
        idem = Idempotent.of("hold", patient, request.idempotency_key, request, pb.HoldSlotResponse)
        at = min(now, slot["starts_at"]) - dt.timedelta(hours=1)
        requests.append((HoldRequest(idem, patient, request.slot_id), at))
    for request, at in requests:
        (outcome,) = store.hold_slots([request], policy, at)
        if isinstance(outcome, Exception):
            raise outcome
    return len(requests)


def _period(since_midnight: dt.timedelta) -> Period:
    hours = since_midnight / dt.timedelta(hours=1)
    return Period.MORNING if hours < 12 else Period.AFTERNOON if hours < 18 else Period.EVENING


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def main() -> None:
    setup_logging("registration-seed")
    migrate_service("registration")
    url = service_database_url("registration")
    database = Database(url, name="registration-seed").open()
    try:
        sessions, slots = seed(database, RegistrationConfig.from_env(), json.loads(SEED_DATA.read_text("utf-8")))
    finally:
        database.close()
    log.info("seeded registration", extra={"sessions_created": sessions, "slots_created": slots})


if __name__ == "__main__":
    main()
