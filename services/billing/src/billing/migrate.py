"""``python -m billing.migrate``: brings billing's database to the latest revision."""
from __future__ import annotations

from tuoguan_common.config import service_database_url
from tuoguan_common.db import migrate

from .api import MIGRATIONS_DIR


def main() -> None:
    migrate(service_database_url("billing"), MIGRATIONS_DIR)


if __name__ == "__main__":
    main()
