"""Billing's migrations on a database that already holds rows: 0006 builds
the retention purge's indexes on inbox and idempotency_keys CONCURRENTLY,
beside the writers of both (payments claim keys, refund events take inbox
rows), and its downgrade drops them."""
from __future__ import annotations

import pytest
from billing.migrate import MIGRATIONS_DIR
from tuoguan_common.db import drop_database
from tuoguan_common.testing import check_retention_indexes_migration, unique_database_url

pytestmark = pytest.mark.integration


def test_the_retention_indexes_are_built_beside_writers_and_dropped_on_downgrade(infra):
    url = unique_database_url(infra, "billing")
    try:
        check_retention_indexes_migration(url, MIGRATIONS_DIR, "0005")
    finally:
        drop_database(url)
