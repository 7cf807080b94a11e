"""The shared library's fixtures: a database with the outbox's tables on the real PostgreSQL."""
from __future__ import annotations

import psycopg
import pytest

from tuoguan_common import outbox
from tuoguan_common.db import Database, drop_database, ensure_database
from tuoguan_common.testing import unique_database_url


@pytest.fixture
def outbox_db(infra):
    url = unique_database_url(infra, "outboxtest")
    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(outbox.DDL)
    db = Database(url).open()
    yield db
    db.close()
    drop_database(url)
