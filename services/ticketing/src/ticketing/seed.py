"""``python -m ticketing.seed``: the subsystem catalogue from subsystems.json.
Running it again refreshes the entries by code and adds new ones."""
from __future__ import annotations

import json
import logging
from importlib import resources

from tuoguan_common.config import service_database_url
from tuoguan_common.db import Database, migrate_service
from tuoguan_common.logs import setup_logging

from .config import TicketingConfig
from .domain.calendar import ServiceHours
from .store import Store

log = logging.getLogger(__name__)


def catalogue() -> list[dict]:
    data = json.loads(resources.files(__package__).joinpath("subsystems.json").read_text(encoding="utf-8"))
    entries = data["subsystems"]
    for entry in entries:
        # The file obeys the API's rules: a bad line fails the seed, not a ticket later.
        entry["service_hours"] = str(ServiceHours.parse(entry["service_hours"]))
        entry.setdefault("name_en", "")
    return entries


def seed(database: Database) -> int:
    return Store(database, TicketingConfig()).load_catalogue(catalogue())


def main() -> None:
    setup_logging("ticketing-seed")
    migrate_service("ticketing")
    database = Database(service_database_url("ticketing"), name="ticketing-seed").open()
    try:
        count = seed(database)
    finally:
        database.close()
    log.info("subsystem catalogue loaded", extra={"subsystems": count})


if __name__ == "__main__":
    main()
