"""``python -m identity.migrate``: brings identity's database to the latest revision."""
from __future__ import annotations

from pathlib import Path

from tuoguan_common.config import service_database_url
from tuoguan_common.db import migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def main() -> None:
    migrate(service_database_url("identity"), MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
