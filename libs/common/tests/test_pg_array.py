"""pg_array's literals read back as the values they were made from, on the real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from tuoguan_common.db import pg_array

pytestmark = pytest.mark.integration


def test_every_element_reads_back_as_it_was(outbox_db):
    texts = ['plain', 'a "quoted" word', "back\\slash", "comma, {braces}", "NULL", "", " spaced ", "挂号 单"]
    ids = [uuid.uuid4() for _ in range(3)]
    instants = [dt.datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=dt.timezone.utc), None]
    documents = [{"name": 'say "hi"', "path": "C:\\x", "n": 1}, {}]
    raw = [b"\x00\x01binary\xff", b""]
    with outbox_db.transaction() as cur:
        cur.execute("SELECT %s::text[] AS texts, %s::uuid[] AS ids, %s::timestamptz[] AS instants, "
                    "%s::jsonb[] AS documents, %s::bytea[] AS raw, %s::int[] AS numbers, %s::boolean[] AS flags",
                    (pg_array(texts + [None]), pg_array(ids), pg_array(instants),
                     pg_array(json.dumps(d) for d in documents), pg_array(raw),
                     pg_array([0, -7, 2**31 - 1]), pg_array([True, False])))
        row = cur.fetchone()
    assert row["texts"] == texts + [None]
    assert row["ids"] == ids
    assert row["instants"] == instants
    assert row["documents"] == documents
    assert [bytes(r) for r in row["raw"]] == raw
    assert row["numbers"] == [0, -7, 2**31 - 1]
    assert row["flags"] == [True, False]


def test_an_empty_array_is_empty(outbox_db):
    with outbox_db.transaction() as cur:
        cur.execute("SELECT cardinality(%s::uuid[]) AS n", (pg_array([]),))
        assert cur.fetchone()["n"] == 0
