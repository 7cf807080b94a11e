"""An api says at start-up when its PostgreSQL runs without autovacuum: its
tables are then never analysed nor vacuumed, and the platform slows down as
they grow (measured in the surge bench)."""
import logging

import pytest

pytestmark = pytest.mark.integration


def test_the_warning_follows_the_servers_setting(outbox_db, caplog):
    with outbox_db.transaction() as cur:
        cur.execute("SHOW autovacuum")
        server_runs_it = cur.fetchone()["autovacuum"] == "on"
    with caplog.at_level(logging.WARNING, logger="tuoguan_common.db"):
        assert outbox_db.warn_without_autovacuum() is server_runs_it
    warnings = [r for r in caplog.records if "without autovacuum" in r.getMessage()]
    assert len(warnings) == (0 if server_runs_it else 1)
    if warnings:
        assert warnings[0].database == outbox_db.dbname
        assert "docs/deploy.md" in warnings[0].getMessage()
