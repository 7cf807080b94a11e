"""Demo data: ``python -m registration.seed``.

Departments of a cancer hospital, their doctors and fees, weekly templates,
and two weeks of schedule released at once. Running it again changes nothing
that is already there.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database, migrate_service
from tuoguan_common.logs import setup_logging
from tuoguan_common.outbox import utcnow

from .config import RegistrationConfig
from .domain import schedule
from .domain.model import Period
from .publishing import publish_schedule
from .store import Store

log = logging.getLogger(__name__)

SEED_DATA = Path(__file__).resolve().parent / "seed_data.json"
SEED_DAYS = 14


def seed(database: Database, config: RegistrationConfig, data: dict) -> tuple[int, int]:
    """Writes the reference data and templates, publishes; returns the sessions and slots it created."""
    store = Store(database)
    with database.transaction() as cur:
        for title, fee_fen in data["title_fees_fen"].items():
            store.save_title_fee(cur, title, fee_fen)
        for dep in data["departments"]:
            department_id = store.save_department(cur, dep["code"], dep["name"], dep["name_en"])
            for doc in dep["doctors"]:
                doctor_id = store.save_doctor(cur, doc["staff_code"], department_id, doc["name"], doc["title"],
                                              doc["speciality"])
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
                    store.save_template(cur, fields)
    return publish_schedule(store, config.release, utcnow(), days_ahead=SEED_DAYS, release_now=True)


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
