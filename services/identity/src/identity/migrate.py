"""``python -m identity.migrate``: brings identity's database to the latest revision."""
from __future__ import annotations

from tuoguan_common.db import migrate_service, migrations_dir

MIGRATIONS_DIR = migrations_dir("identity")


def main() -> None:
    migrate_service("identity")


if __name__ == "__main__":
    main()
