"""The outbox relay against the real PostgreSQL and RabbitMQ: every event
arrives once, as a nameko event a nameko handler can consume; a broker or a
database that stops answering fails a run in time, as the worker runs it
(under eventlet), and the next run publishes."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

from tuoguan.billing.v1 import events_pb2
from tuoguan_common import outbox
from tuoguan_common.testing import EventTap, SilentProxy, wait_for

pytestmark = pytest.mark.integration


def test_relay_publishes_each_event_once_in_nameko_format(infra, outbox_db):
    service = f"svc{uuid.uuid4().hex[:6]}"
    with EventTap(infra["amqp_uri"], service, ["PaymentCaptured"]) as tap:
        ids = []
        with outbox_db.transaction() as cur:
            for n in range(25):
                ids.append(outbox.append(cur, events_pb2.PaymentCaptured(payment_id=f"p{n}", amount_fen=100 + n)))
        relay = outbox.OutboxRelay(service, outbox_db.url, infra["amqp_uri"], batch_size=10)
        sent = sum(relay.relay_once() for _ in range(4))
        assert sent == 25
        assert relay.relay_once() == 0
        assert relay.backlog() == 0
        relay.close()
        got = wait_for(lambda: len(tap.events("PaymentCaptured")) >= 25 and tap.events("PaymentCaptured"),
                       message="the relayed events")
    assert [m["event_id"] for m in got] == ids
    parsed = outbox.parse_event(got[3], events_pb2.PaymentCaptured)
    assert parsed.payment_id == "p3" and parsed.amount_fen == 103



def test_through_a_transaction_pooler_the_relay_bounds_its_transactions_and_no_one_else_s(infra, outbox_db, pgbouncer):
    """The relay's idle-in-transaction timeout (a relay gone with its batch's
    row locks lets go of them) is its transactions': set for the session,
    PgBouncer in transaction mode left it on a server connection that the
    pool's other clients got next."""
    with outbox_db.transaction() as cur:
        outbox.append(cur, events_pb2.PaymentCaptured(payment_id="p1", amount_fen=100))
    with psycopg.connect(outbox_db.url) as conn:
        default = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0]
    relay = outbox.OutboxRelay(f"svc{uuid.uuid4().hex[:6]}", pgbouncer.url(outbox_db.url), infra["amqp_uri"])
    try:
        assert relay.relay_once() == 1
        assert relay.backlog() == 0
        clients = pgbouncer.server_connections(outbox_db.url)
        try:
            for client in clients:
                assert client.execute("SHOW idle_in_transaction_session_timeout").fetchone() == (default,)
        finally:
            for client in clients:
                client.close()
        # Each of the relay's transactions begins with it.
        with relay._conn.cursor() as cur:
            relay._bound_idleness(cur)
            assert cur.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1min",)
        relay._conn.rollback()
    finally:
        relay.close()

def test_inbox_makes_redelivery_harmless(outbox_db):
    event_id = str(uuid.uuid4())
    with outbox_db.transaction() as cur:
        assert outbox.first_time(cur, event_id, "handler") is True
    with outbox_db.transaction() as cur:
        assert outbox.first_time(cur, event_id, "handler") is False
        assert outbox.first_time(cur, event_id, "other_handler") is True


def test_idempotency_key_returns_first_answer_and_rejects_reuse(outbox_db):
    request = events_pb2.PaymentCaptured(payment_id="a")
    fp = outbox.request_fingerprint(request)
    with outbox_db.transaction() as cur:
        assert outbox.claim_key(cur, "pay", "patient-1", "k1", fp) is None
        outbox.store_response(cur, "pay", "patient-1", "k1", events_pb2.PaymentCaptured(payment_id="answer"))
    with outbox_db.transaction() as cur:
        stored = outbox.claim_key(cur, "pay", "patient-1", "k1", fp)
        assert events_pb2.PaymentCaptured.FromString(stored).payment_id == "answer"
    with pytest.raises(outbox.IdempotencyConflict) as reused:
        with outbox_db.transaction() as cur:
            outbox.claim_key(cur, "pay", "patient-1", "k1", outbox.request_fingerprint(events_pb2.PaymentCaptured(payment_id="b")))
    assert (reused.value.code, reused.value.reason, reused.value.field) == \
        ("INVALID_ARGUMENT", "idempotency_key_reused", "idempotency_key")



def test_an_event_that_cannot_be_applied_is_dead_lettered_not_requeued(outbox_db):
    from tuoguan_common.nameko_support import handle_event

    def refuse(cur, event):
        raise ValueError("a rule this event breaks every time")

    payload = outbox.event_payload(events_pb2.PaymentCaptured(payment_id="p-x"), str(uuid.uuid4()),
                                   outbox.utcnow())
    assert handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", refuse) == "dead_lettered"
    assert handle_event(outbox_db, {"no": "id"}, events_pb2.PaymentCaptured, "h", refuse) == "malformed"
    with outbox_db.transaction() as cur:
        cur.execute("SELECT event_id, handler, error FROM dead_letters ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT count(*) AS n FROM inbox")
        assert cur.fetchone()["n"] == 0  # nothing half-applied
    assert [(r["event_id"], r["handler"], r["error"]) for r in rows] == [
        (payload["event_id"], "h", "ValueError"), (None, "h", "KeyError")]


def test_a_transient_failure_goes_back_to_the_queue(outbox_db):
    from tuoguan_common.nameko_support import handle_event

    def database_down(cur, event):
        raise psycopg.OperationalError("server closed the connection")

    payload = outbox.event_payload(events_pb2.PaymentCaptured(payment_id="p-y"), str(uuid.uuid4()),
                                   outbox.utcnow())
    with pytest.raises(psycopg.OperationalError):
        handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", database_down)
    ok = handle_event(outbox_db, payload, events_pb2.PaymentCaptured, "h", lambda cur, event: None)
    assert ok == "ok"  # the retry applies it, once


def append_captures(db, n: int) -> list[str]:
    with db.transaction() as cur:
        return [outbox.append(cur, events_pb2.PaymentCaptured(payment_id=f"p{i}")) for i in range(n)]


def unsent_and_unlocked(db) -> int:
    """Unsent rows nobody holds: a run that failed kept no lock."""
    with db.transaction() as cur:
        cur.execute("SELECT id FROM outbox WHERE sent_at IS NULL FOR UPDATE SKIP LOCKED")
        return len(cur.fetchall())


def test_a_broker_that_stops_answering_fails_the_run_in_time_and_the_next_run_publishes(
        infra, outbox_db, green_driver):
    """py-amqp's read timeout is a socket option eventlet's sockets ignore: this run waited forever."""
    service = f"svc{uuid.uuid4().hex[:6]}"
    with SilentProxy(urlsplit(infra["amqp_uri"]).port or 5672) as broker, \
            EventTap(infra["amqp_uri"], service, ["PaymentCaptured"]) as tap:
        relay = green_driver(service=service, database_url=outbox_db.url, amqp_uri=broker.url(infra["amqp_uri"]),
                             relay={"io_timeout": 2.0})
        connected = relay.ask("run")
        assert connected["sent"] == 0
        ids = append_captures(outbox_db, 3)

        broker.frozen.set()  # the connection stays open; nothing comes back
        failed = relay.ask("run", timeout=25)
        assert failed.get("raised") == "TimeoutError", failed
        assert failed["seconds"] < 8, failed
        assert failed["last_success"] == connected["last_success"]
        wait_for(lambda: unsent_and_unlocked(outbox_db) == 3, message="the failed run's batch rolled back")

        broker.frozen.clear()
        recovered = relay.ask("run")
        assert recovered["sent"] == 3, recovered
        assert recovered["last_success"] > failed["last_success"]
        # The failed run's publishes reach the broker too once it answers: the inbox absorbs doubles.
        wait_for(lambda: {m["event_id"] for m in tap.events("PaymentCaptured")} == set(ids),
                 message="the batch published after the broker came back")
    assert unsent_and_unlocked(outbox_db) == 0


def test_a_database_that_stops_answering_fails_the_run_in_time_and_the_worker_still_stops(
        infra, outbox_db, green_driver):
    """A query the server never answers leaves the kernel nothing to time out: only
    the run's own deadline ends it. Before, the run waited forever, and so did the
    worker's stop, on a relay stuck connecting."""
    service = f"svc{uuid.uuid4().hex[:6]}"
    limits = {"run_timeout": 3.0, "io_timeout": 2.0, "connect_timeout": 2}
    with SilentProxy(urlsplit(outbox_db.url).port or 5432) as database, \
            EventTap(infra["amqp_uri"], service, ["PaymentCaptured"]) as tap:
        relay = green_driver(service=service, database_url=database.url(outbox_db.url), amqp_uri=infra["amqp_uri"],
                             relay=limits)
        assert relay.ask("run")["sent"] == 0
        ids = append_captures(outbox_db, 3)

        database.frozen.set()
        failed = relay.ask("run", timeout=25)
        assert failed.get("raised") == "DeadlineExceeded", failed
        assert 2.5 < failed["seconds"] < 8, failed

        assert relay.ask("relayer-start")["relaying"]
        time.sleep(1.0)  # the worker's relay is connecting to the silent server
        stopped = relay.ask("relayer-stop", timeout=40)
        assert stopped["seconds"] < limits["run_timeout"] + 2 * limits["io_timeout"], stopped

        database.frozen.clear()
        # The failed run's query reaches the server once it answers, and holds
        # the batch until that session ends: the rows come with a later run.
        sent = 0
        deadline = time.monotonic() + 20
        while sent < 3 and time.monotonic() < deadline:
            sent += relay.ask("run").get("sent", 0)
        assert sent == 3
        wait_for(lambda: {m["event_id"] for m in tap.events("PaymentCaptured")} == set(ids),
                 message="the batch published after the database came back")



def first_bytes_heard(outbox_db, scheme: str, tls_server=None) -> bytes:
    """Runs one relay against a listener on a free port that takes one connection (over TLS with
    ``tls_server``, an ssl.SSLContext) and keeps the first bytes the relay sends: b"" when no TLS
    handshake completed. Nothing answers in AMQP, so the relay's run fails."""
    heard: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def listen() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                try:
                    if tls_server is None:
                        heard.append(conn.recv(8))
                    else:
                        with tls_server.wrap_socket(conn, server_side=True) as tls:
                            heard.append(tls.recv(8))
                except OSError:  # ssl.SSLError included: a handshake refused
                    heard.append(b"")

        threading.Thread(target=listen, daemon=True).start()
        relay = outbox.OutboxRelay("svc", outbox_db.url, f"{scheme}://guest:guest@127.0.0.1:{port}//")
        relay.connect_timeout = relay.io_timeout = 2
        with pytest.raises(OSError):
            relay.relay_once()
        relay.abandon()
    wait_for(lambda: heard, message="the relay connected")
    return heard[0]


@pytest.mark.parametrize("scheme, first_bytes", [
    ("amqps", b"\x16\x03"),  # a TLS handshake record: the ClientHello
    ("amqp", b"AMQP\x00\x00\x09\x01"),  # AMQP 0-9-1's protocol header, in the clear
])
def test_the_relay_speaks_tls_to_an_amqps_broker(outbox_db, scheme, first_bytes):
    """The relay read the broker's URI itself and dropped its scheme: to the
    amqps:// of the deployment guide it sent plain AMQP, nothing it wrote was
    ever published, while nameko's consumers (kombu) spoke TLS and looked well."""
    assert first_bytes_heard(outbox_db, scheme).startswith(first_bytes)


def _certificate(directory, name: str) -> tuple[str, str]:
    """A self-signed certificate for ``name`` (a DNS name or an IP address), made by openssl."""
    import subprocess

    key, cert = str(directory / f"{name}.key"), str(directory / f"{name}.pem")
    alt = f"IP:{name}" if name[0].isdigit() else f"DNS:{name}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt}"],
                   check=True, capture_output=True)
    return key, cert


@pytest.mark.parametrize("issued_for, verified", [("127.0.0.1", True), ("broker.elsewhere.test", False)])
def test_the_relay_checks_an_amqps_brokers_certificate_and_name(outbox_db, tmp_path, monkeypatch,
                                                                 issued_for, verified):
    """kombu's default for amqps:// checked neither the broker's name nor sent it: any certificate a
    trusted CA signed, for any host, passed. A certificate for another name is refused before a byte of
    AMQP (the credentials) is sent; the right one completes the handshake."""
    import ssl

    key, cert = _certificate(tmp_path, issued_for)
    monkeypatch.setenv("TUOGUAN_AMQP_CA_FILE", cert)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    heard = first_bytes_heard(outbox_db, "amqps", server)
    if verified:
        assert heard.startswith(b"AMQP"), heard  # the handshake passed: AMQP spoken inside TLS
    else:
        assert heard == b"", heard  # no handshake completed: nothing, the credentials least, went over it
