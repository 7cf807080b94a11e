"""``python -m ticketing.migrate``: brings ticketing's database to the latest revision."""
from __future__ import annotations

from tuoguan_common.db import migrate_service, migrations_dir

MIGRATIONS_DIR = migrations_dir("ticketing")


def main() -> None:
    migrate_service("ticketing")


if __name__ == "__main__":
    main()
