"""Migrates registration's database: ``python -m registration.migrate``."""
from __future__ import annotations

from pathlib import Path

from tuoguan_common import db
from tuoguan_common.config import service_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def migrate(url: str | None = None) -> None:
    """Brings the database named by REGISTRATION_DATABASE_URL (or DATABASE_URL) to the latest revision."""
    db.migrate(url or service_database_url("registration"), MIGRATIONS_DIR)


if __name__ == "__main__":
    migrate()
