"""``python -m registration.migrate``: brings registration's database to the latest revision."""
from __future__ import annotations

from tuoguan_common.db import migrate_service, migrations_dir

MIGRATIONS_DIR = migrations_dir("registration")


def main() -> None:
    migrate_service("registration")


if __name__ == "__main__":
    main()
