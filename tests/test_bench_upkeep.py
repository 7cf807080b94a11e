"""The surge bench's stand-in for autovacuum (bench/upkeep.py): the same
decisions as autovacuum, with the server's settings, on the bench's own
databases only."""
from __future__ import annotations

import time

import psycopg
import pytest

from bench import upkeep
from tuoguan_common.db import drop_database
from tuoguan_common.testing import unique_database_url

DEFAULTS = upkeep.Thresholds()


def stats(reltuples=0.0, changed=0, dead=0, inserted=0) -> upkeep.TableStats:
    return upkeep.TableStats(reltuples, changed, dead, inserted)


def test_autovacuums_own_thresholds():
    # Analysed past 50 rows changed plus a tenth of the table.
    assert upkeep.due(stats(10_000, changed=1_050), DEFAULTS) == (False, False)
    assert upkeep.due(stats(10_000, changed=1_051), DEFAULTS) == (False, True)
    # Vacuumed past 50 dead rows plus a fifth of the table.
    assert upkeep.due(stats(10_000, dead=2_050), DEFAULTS) == (False, False)
    assert upkeep.due(stats(10_000, dead=2_051), DEFAULTS) == (True, False)
    # Or past 1,000 rows inserted plus a fifth of the table (PostgreSQL 13's insert rule), unless turned off.
    assert upkeep.due(stats(10_000, inserted=3_001), DEFAULTS) == (True, False)
    assert upkeep.due(stats(10_000, inserted=3_001), upkeep.Thresholds(vacuum_insert_threshold=-1)) == (False, False)
    # A table never analysed counts as empty: its first 51 changes are enough.
    assert upkeep.due(stats(0, changed=51, inserted=51), DEFAULTS) == (False, True)


@pytest.mark.integration
def test_the_settings_are_the_servers(infra):
    running, limits = upkeep.server_settings(infra["database_url"])
    with psycopg.connect(infra["database_url"]) as conn:
        assert running is (conn.execute("SHOW autovacuum").fetchone()[0] == "on")
        scale = float(conn.execute("SHOW autovacuum_analyze_scale_factor").fetchone()[0])
    assert limits.analyze_scale_factor == scale
    assert limits.naptime_s > 0


@pytest.mark.integration
def test_a_round_analyses_and_vacuums_what_is_due_and_nothing_else(infra):
    url = unique_database_url(infra, "upkeep")
    with psycopg.connect(infra["database_url"], autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # Out of the way of the server's own autovacuum, if it runs one: only the round acts.
            for table in ("grown (id int PRIMARY KEY, n int NOT NULL)", "churned (id int PRIMARY KEY, n int NOT NULL)",
                          "quiet (id int PRIMARY KEY)"):
                conn.execute(f"CREATE TABLE {table} WITH (autovacuum_enabled = false)")
            conn.execute("INSERT INTO grown SELECT g, 0 FROM generate_series(1, 40) g")
            conn.execute("INSERT INTO churned SELECT g, 0 FROM generate_series(1, 40) g")
            conn.execute("INSERT INTO quiet VALUES (1)")
            conn.execute("VACUUM ANALYZE churned")
            conn.execute("VACUUM ANALYZE quiet")
            # 200 rows in a table never analysed: past 50 changes, no dead row.
            conn.execute("INSERT INTO grown SELECT g, 0 FROM generate_series(41, 200) g")
            for _ in range(3):  # 120 dead rows in a table of 40
                conn.execute("UPDATE churned SET n = n + 1")
        limits = upkeep.Thresholds(vacuum_insert_threshold=-1)
        vacuumed, analysed = _round_when_counted(url, limits)
        assert (vacuumed, analysed) == (1, 2)
        with psycopg.connect(url) as conn:
            done = {name: (vacuum is not None, analyze is not None) for name, vacuum, analyze in conn.execute(
                "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables").fetchall()}
        # grown: analysed only (no dead rows); churned: vacuumed and analysed
        # again (as VACUUM (ANALYZE)); quiet: as the set-up left it.
        assert done == {"grown": (False, True), "churned": (True, True), "quiet": (True, True)}
        assert upkeep.visit(url, limits) == (0, 0), "a second round finds nothing due"
    finally:
        drop_database(url)


def _round_when_counted(url: str, limits: upkeep.Thresholds) -> tuple[int, int]:
    """A round, once the server's statistics show the set-up's changes (another
    session's counts reach them when that session ends or a second passes)."""
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(url) as conn:
            dead = conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churned'").fetchone()[0]
        if dead >= 120 or time.monotonic() > deadline:
            return upkeep.visit(url, limits)
        time.sleep(0.2)
