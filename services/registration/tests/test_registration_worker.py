"""The worker as its own process against the real PostgreSQL and RabbitMQ:
billing's events confirm, release and refund bookings; timers expire holds."""
from __future__ import annotations

import datetime as dt
import socket
import sys
import urllib.request
import uuid
from functools import partial

import pytest
from registration.domain.policy import BookingPolicy
from registration.store import HoldRequest, Idempotent
from registration_testkit import local, slot_counters, tomorrow
from tuoguan.billing.v1 import events_pb2 as billing
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common.outbox import utcnow
from tuoguan_common.testing import EventTap, free_port, publish_event, wait_for, wait_for_consumers

pytestmark = pytest.mark.integration

OUR_EVENTS = ("BookingConfirmed", "PaymentRejected", "HoldReleased", "BookingCancelled")
HANDLER_QUEUES = tuple(
    f"evt-billing-{event_type}--registration.{handler}"
    for handler, event_type in (("on_payment_captured", "PaymentCaptured"), ("on_payment_failed", "PaymentFailed"),
                                ("on_refund_issued", "RefundIssued"))
)


@pytest.fixture
def published(infra):
    """What registration publishes, from a queue of this test's own."""
    with EventTap(infra["amqp_uri"], "registration", OUR_EVENTS) as tap:
        yield tap


@pytest.fixture
def publish(infra):
    """Publishes billing's events as billing would."""
    return partial(publish_event, infra["amqp_uri"], "billing")


@pytest.fixture
def worker(processes, database, infra, published):
    """The registration worker, started and listening to billing's events."""
    metrics_port = free_port()
    processes.start(
        "registration-worker", [sys.executable, "-m", "tuoguan_common.worker_main", "registration"],
        env={"REGISTRATION_DATABASE_URL": database.url, "AMQP_URI": infra["amqp_uri"],
             "REGISTRATION_WORKER_METRICS_PORT": str(metrics_port), "REGISTRATION_EXPIRY_INTERVAL_SECONDS": "0.2",
             "TUOGUAN_QUEUE_WATCH_SECONDS": "0.2", "LOG_LEVEL": "WARNING"},
        ready_port=metrics_port,
    )
    wait_for_consumers(infra["amqp_uri"], HANDLER_QUEUES, timeout=30, message="the worker to consume billing's events")
    return metrics_port


def handled(metrics_port: int, handler: str, outcome: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
    except (OSError, socket.timeout):
        return 0.0
    needle = f'handler="{handler}",outcome="{outcome}",service="registration"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tuoguan_events_handled_total{") and needle in line)


def test_the_worker_reports_its_event_queues_as_the_broker_counts_them(worker):
    def queues() -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{worker}/metrics", timeout=2).read().decode()
        return {line.split('queue="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("tuoguan_event_queue_consumers{")}

    def every_queue_consumed() -> dict[str, float] | None:
        counted = queues()
        return counted if set(counted) == set(HANDLER_QUEUES) and min(counted.values()) >= 1 else None

    # Each of the handlers' queues, with this worker among its consumers.
    wait_for(every_queue_consumed, timeout=10, message="a figure of at least one consumer for each of the worker's queues")


def hold(store, patient_id: str, slot_id: str) -> pb.Booking:
    idem = Idempotent("hold", patient_id, str(uuid.uuid4()), "fingerprint", pb.HoldSlotResponse)
    (held,) = store.hold_slots([HoldRequest(idem, patient_id, slot_id)], BookingPolicy(), utcnow())
    return held.booking


def booking_row(store, booking_id: str) -> dict:
    with store.db.transaction() as cur:
        cur.execute("SELECT * FROM bookings WHERE id = %s", (booking_id,))
        return cur.fetchone()


# Payment ids as billing makes them.
PAY = {n: str(uuid.uuid4()) for n in (1, 2, 3, 9, 10)}


def captured(booking: pb.Booking, payment_id: str) -> billing.PaymentCaptured:
    return billing.PaymentCaptured(payment_id=payment_id, booking_id=booking.booking_id,
                                   patient_id=booking.patient_id, amount_fen=booking.fee_fen)


def test_payment_captured_confirms_once_and_a_late_payment_is_rejected(worker, publish, published, clinic, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    booking = hold(store, str(uuid.uuid4()), slot_id)

    event_id = publish(captured(booking, PAY[1]))
    wait_for(lambda: booking_row(store, booking.booking_id)["status"] == "CONFIRMED", message="the confirmation")
    (confirmed,) = wait_for(lambda: published.events("BookingConfirmed", booking_id=booking.booking_id),
                            message="BookingConfirmed on registration.events")
    assert (confirmed["payment_id"], confirmed["queue_number"]) == (PAY[1], 1)
    row = booking_row(store, booking.booking_id)
    assert (row["payment_id"], row["queue_number"]) == (PAY[1], 1)
    counters = slot_counters(store, slot_id)
    assert (counters["booked"], counters["held"]) == (1, 0)

    # The same delivery again, and billing announcing the same payment anew: nothing changes.
    publish(captured(booking, PAY[1]), event_id)
    publish(captured(booking, PAY[1]))
    wait_for(lambda: handled(worker, "on_payment_captured", "duplicate") >= 1, message="the duplicate handled")
    wait_for(lambda: handled(worker, "on_payment_captured", "ok") >= 2, message="the repeated capture handled")
    assert booking_row(store, booking.booking_id) == row
    assert slot_counters(store, slot_id) == counters
    assert len(published.events("BookingConfirmed", booking_id=booking.booking_id)) == 1

    # A hold that has expired cannot be confirmed: billing is told to give the money back.
    late = hold(store, str(uuid.uuid4()), slot_id)
    with store.db.transaction() as cur:
        cur.execute("UPDATE bookings SET hold_expires_at = now() - interval '1 second' WHERE id = %s",
                    (late.booking_id,))
    wait_for(lambda: booking_row(store, late.booking_id)["status"] == "EXPIRED", message="the hold to expire")
    publish(captured(late, PAY[2]))
    (rejected,) = wait_for(lambda: published.events("PaymentRejected", booking_id=late.booking_id),
                           message="PaymentRejected")
    assert (rejected["payment_id"], rejected["reason"]) == (PAY[2], "booking_expired")
    assert slot_counters(store, slot_id)["booked"] == 1

    # An event about a booking this service never made is answered, not retried forever.
    unknown = str(uuid.uuid4())
    publish(billing.PaymentCaptured(payment_id=PAY[3], booking_id=unknown, amount_fen=100))
    wait_for(lambda: published.events("PaymentRejected", booking_id=unknown), message="the unknown booking rejected")


def dead_letters(store, event_type: str) -> list[dict]:
    with store.db.transaction() as cur:
        cur.execute("SELECT payload, error FROM dead_letters WHERE event_type = %s", (event_type,))
        return cur.fetchall()


def test_a_payment_event_naming_no_payment_is_put_aside_not_applied(worker, publish, published, clinic, store):
    """Audit: a capture with an empty payment id confirmed a held booking with no payment, and on a confirmed
    one was rejected as already paid with a PaymentRejected naming no payment, which billing refunded from the
    booking's real payment (the visit stayed confirmed). Such an event is malformed: dead-lettered, nothing
    written, nothing published."""
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 10), capacity=2)
    held, paid = hold(store, str(uuid.uuid4()), slot_id), hold(store, str(uuid.uuid4()), slot_id)
    publish(captured(paid, PAY[1]))
    wait_for(lambda: booking_row(store, paid.booking_id)["status"] == "CONFIRMED", message="the confirmation")
    before = {b.booking_id: booking_row(store, b.booking_id) for b in (held, paid)}
    for booking, payment_id in ((held, ""), (paid, ""), (held, "not-a-payment")):
        publish(captured(booking, payment_id))
    publish(billing.RefundIssued(payment_id="", booking_id=paid.booking_id, amount_fen=paid.fee_fen))
    publish(billing.PaymentFailed(payment_id="", booking_id=held.booking_id, reason="card_declined"))
    wait_for(lambda: len(dead_letters(store, "PaymentCaptured")) == 3 and dead_letters(store, "RefundIssued")
             and dead_letters(store, "PaymentFailed"), message="the five events dead-lettered")
    assert handled(worker, "on_payment_captured", "malformed") == 3
    assert {b.booking_id: booking_row(store, b.booking_id) for b in (held, paid)} == before
    assert not published.events("PaymentRejected", booking_id=paid.booking_id)
    assert not published.events("HoldReleased", booking_id=held.booking_id)


def test_expiry_failed_payments_and_refunds(worker, publish, published, clinic, store):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=2)
    expiring = hold(store, str(uuid.uuid4()), slot_id)
    failing = hold(store, str(uuid.uuid4()), slot_id)
    assert slot_counters(store, slot_id)["held"] == 2

    with store.db.transaction() as cur:
        cur.execute("UPDATE bookings SET hold_expires_at = now() - interval '1 second' WHERE id = %s",
                    (expiring.booking_id,))
    (released,) = wait_for(lambda: published.events("HoldReleased", booking_id=expiring.booking_id),
                           message="HoldReleased")
    assert released["reason"] == "expired"
    assert booking_row(store, expiring.booking_id)["cancel_reason"] == "expired"
    assert slot_counters(store, slot_id)["held"] == 1

    publish(billing.PaymentFailed(payment_id=PAY[9], booking_id=failing.booking_id,
                                         patient_id=failing.patient_id, reason="card_declined"))
    (released,) = wait_for(lambda: published.events("HoldReleased", booking_id=failing.booking_id),
                           message="HoldReleased")
    assert released["reason"] == "payment_failed"
    row = booking_row(store, failing.booking_id)
    assert (row["status"], row["cancel_reason"]) == ("EXPIRED", "payment_failed")
    counters = slot_counters(store, slot_id)
    assert counters["held"] == counters["held_bookings"] == 0

    # A confirmed booking cancelled by the office's suspension, then refunded by billing.
    paid = hold(store, str(uuid.uuid4()), slot_id)
    publish(captured(paid, PAY[10]))
    wait_for(lambda: booking_row(store, paid.booking_id)["status"] == "CONFIRMED", message="the confirmation")
    with store.db.transaction() as cur:
        cur.execute("SELECT session_id FROM slots WHERE id = %s", (slot_id,))
        session_id = str(cur.fetchone()["session_id"])
    suspend = Idempotent("suspend", "office", str(uuid.uuid4()), "fingerprint", pb.SuspendSessionResponse)
    store.suspend_session(suspend, session_id, "doctor ill", utcnow())
    (cancelled,) = wait_for(lambda: published.events("BookingCancelled", booking_id=paid.booking_id),
                            message="BookingCancelled")
    assert (cancelled["refund_due"], cancelled["payment_id"]) == (True, PAY[10])
    publish(billing.RefundIssued(payment_id=PAY[10], booking_id=paid.booking_id, patient_id=paid.patient_id,
                                        amount_fen=paid.fee_fen, refund_id="r-1"))
    wait_for(lambda: booking_row(store, paid.booking_id)["refunded_at"] is not None, message="the refund recorded")
    assert booking_row(store, paid.booking_id)["refund_due"] is False
    assert booking_row(store, paid.booking_id)["refunded_at"] - utcnow() < dt.timedelta(seconds=5)
