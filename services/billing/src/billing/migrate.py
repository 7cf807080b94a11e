"""``python -m billing.migrate``: brings billing's database to the latest revision."""
from __future__ import annotations

from tuoguan_common.db import migrate_service, migrations_dir

MIGRATIONS_DIR = migrations_dir("billing")


def main() -> None:
    migrate_service("billing")


if __name__ == "__main__":
    main()
