"""Billing's migrations on a database that already holds rows: 0006 builds
the retention purge's indexes on inbox and idempotency_keys CONCURRENTLY,
beside the writers of both (payments claim keys, refund events take inbox
rows), and its downgrade drops them; 0007 fills in the charges given back
after their payment failed from their refunds."""
from __future__ import annotations

import datetime as dt
import importlib.util
import uuid
from pathlib import Path

import psycopg
import pytest
from billing.migrate import MIGRATIONS_DIR
from tuoguan_common.db import downgrade, drop_database, migrate
from tuoguan_common.testing import check_retention_indexes_migration, unique_database_url

pytestmark = pytest.mark.integration


def revision(name: str):
    """A revision's module (its file name starts with a digit: loaded by path)."""
    spec = importlib.util.spec_from_file_location(name, Path(MIGRATIONS_DIR) / "versions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BACKFILL = revision("0007_charges_given_back").BACKFILL


def test_the_retention_indexes_are_built_beside_writers_and_dropped_on_downgrade(infra):
    url = unique_database_url(infra, "billing")
    try:
        check_retention_indexes_migration(url, MIGRATIONS_DIR, "0005")
    finally:
        drop_database(url)


def test_0007_shows_the_charges_given_back_before_it(infra):
    url = unique_database_url(infra, "billing")
    try:
        migrate(url, MIGRATIONS_DIR, "0006")
        given_back, cancelled = str(uuid.uuid4()), str(uuid.uuid4())
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                "provider_reference, failure_reason, refunded_fen, created_at) VALUES "
                "(%s, 'b1', 'p1', 5000, 'FAILED', 'sandbox', 'ch1', 'never_authorized', 0, now()), "
                "(%s, 'b2', 'p2', 5000, 'REFUNDED', 'sandbox', 'ch2', NULL, 5000, now())", (given_back, cancelled))
            conn.execute(
                "INSERT INTO refunds (refund_id, payment_id, amount_fen, reason, provider_reference, refunded_at) "
                "VALUES (gen_random_uuid(), %s, 5000, 'charged_after_failure', 'rf1', '2026-11-26T02:00Z'), "
                "(gen_random_uuid(), %s, 5000, 'booking_cancelled', 'rf2', '2026-11-26T03:00Z')",
                (given_back, cancelled))
        migrate(url, MIGRATIONS_DIR)
        with psycopg.connect(url) as conn:
            rows = {r[0]: r[1:] for r in conn.execute(
                "SELECT payment_id::text, refunded_after_failure_fen, refunded_after_failure_at FROM payments")}
        assert rows == {given_back: (5000, dt.datetime(2026, 11, 26, 2, tzinfo=dt.timezone.utc)),
                        cancelled: (0, None)}
        # An upgrade that stopped after the backfill's commit, before its revision was written, runs again.
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE alembic_version SET version_num = '0006'")
        migrate(url, MIGRATIONS_DIR)
        # An old worker, still running during the rollout, gives a charge back without the new columns:
        # the query the upgrade notes give fills it in, and leaves the rest as they are.
        late = str(uuid.uuid4())
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO payments (payment_id, booking_id, patient_id, amount_fen, status, provider, "
                         "provider_reference, failure_reason, refunded_fen, created_at) VALUES "
                         "(%s, 'b3', 'p3', 3000, 'FAILED', 'sandbox', 'ch3', 'never_authorized', 0, now())", (late,))
            conn.execute("INSERT INTO refunds (refund_id, payment_id, amount_fen, reason, provider_reference, "
                         "refunded_at) VALUES (gen_random_uuid(), %s, 3000, 'charged_after_failure', 'rf3', "
                         "'2026-11-28T05:00Z')", (late,))
            conn.execute(BACKFILL)
            filled = dict(conn.execute("SELECT payment_id::text, refunded_after_failure_fen FROM payments"))
        assert filled == {given_back: 5000, cancelled: 0, late: 3000}
        downgrade(url, MIGRATIONS_DIR, "0006")
        migrate(url, MIGRATIONS_DIR)
    finally:
        drop_database(url)
