"""A failed transaction's span says that it failed and how, never with what values."""
import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tuoguan_common.telemetry import setup_tracing

pytestmark = pytest.mark.integration

PHONE = "13812345678"


def test_a_failed_transactions_span_carries_the_failures_type_not_its_text(outbox_db):
    setup_tracing("test", record=True)
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    with outbox_db.transaction() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS span_logins (login text PRIMARY KEY)")
        cur.execute("TRUNCATE span_logins")
        cur.execute("INSERT INTO span_logins VALUES (%s)", (PHONE,))
    with pytest.raises(psycopg.errors.UniqueViolation) as failed:
        with outbox_db.transaction() as cur:
            cur.execute("INSERT INTO span_logins VALUES (%s)", (PHONE,))
    # PostgreSQL's own words name the value: what OpenTelemetry exported before.
    assert PHONE in str(failed.value)
    exporter.shutdown()
    ok, refused = [span for span in exporter.get_finished_spans() if span.name == "db.transaction"][-2:]
    assert ok.status.status_code != StatusCode.ERROR
    assert refused.status.status_code == StatusCode.ERROR
    assert refused.status.description == "UniqueViolation"
    assert not refused.events
    assert PHONE not in str(dict(refused.attributes or {}))
