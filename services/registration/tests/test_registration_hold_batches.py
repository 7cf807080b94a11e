"""Holds written in batches (group commit) against the real PostgreSQL: each
request in a batch gets its own answer, the rules count the requests before
it, refusals leave nothing, and concurrent batches neither deadlock nor
overbook."""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from registration.domain.policy import BookingPolicy
from registration.exceptions import BookingRefused, NotFound
from registration.store import HoldRequest
from registration_testkit import local, slot_counters, tomorrow
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common.outbox import Idempotent, IdempotencyConflict, utcnow

pytestmark = pytest.mark.integration


def request(patient_id: str, slot_id: str, key: str | None = None, *, trace: dict | None = None) -> HoldRequest:
    key = key or str(uuid.uuid4())
    message = pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=key)
    return HoldRequest(Idempotent.of("hold", patient_id, key, message, pb.HoldSlotResponse), patient_id, slot_id,
                       trace)


def patient() -> str:
    return str(uuid.uuid4())


def reason(outcome) -> str:
    return outcome.reason if isinstance(outcome, Exception) else "held"


def test_a_batch_over_one_slot_grants_exactly_its_capacity(store, clinic):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=3)
    outcomes = store.hold_slots([request(patient(), slot_id) for _ in range(7)], BookingPolicy(), utcnow())
    assert [reason(o) for o in outcomes] == ["held"] * 3 + ["slot_full"] * 4
    assert all(isinstance(o, BookingRefused) for o in outcomes[3:])
    counters = slot_counters(store, slot_id)
    assert counters["held"] == counters["held_bookings"] == 3
    numbers = {o.booking.booking_number for o in outcomes[:3]}
    assert len(numbers) == 3


def test_the_rules_see_the_patients_earlier_requests_in_the_same_batch(store, clinic):
    morning = clinic.session(clinic.chen, [local(tomorrow(), 8), local(tomorrow(), 9)], capacity=5)
    breast = clinic.slot(clinic.wang, local(tomorrow(), 8, 15), capacity=5)
    someone = patient()
    outcomes = store.hold_slots([
        request(someone, morning[0]),
        request(someone, morning[1]),  # same department, same day
        request(someone, breast),      # another department, but at the same time
    ], BookingPolicy(), utcnow())
    assert [reason(o) for o in outcomes] == ["held", "one_per_department_per_day", "overlapping_booking"]


def test_the_active_booking_cap_counts_the_batch(store, clinic):
    days = [tomorrow() + dt.timedelta(days=i) for i in range(3)]
    slots = [clinic.slot(clinic.zhang, local(day, 9), capacity=5) for day in days]
    someone = patient()
    outcomes = store.hold_slots([request(someone, s) for s in slots], BookingPolicy(active_booking_cap=2), utcnow())
    assert [reason(o) for o in outcomes] == ["held", "held", "active_booking_cap"]


def test_replays_conflicts_unknown_slots_and_repeats_within_a_batch(store, clinic):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=5)
    other_slot = clinic.slot(clinic.wang, local(tomorrow(), 15), capacity=5)
    first, second = patient(), patient()
    (earlier,) = store.hold_slots([request(first, slot_id, "k1")], BookingPolicy(), utcnow())

    repeat_a, repeat_b = request(second, slot_id, "k2"), request(second, slot_id, "k2")
    outcomes = store.hold_slots([
        request(first, slot_id, "k1"),          # the same request again: the first answer
        request(first, other_slot, "k1"),       # the same key for another request
        request(patient(), str(uuid.uuid4())),  # no such slot
        repeat_a, repeat_b,                     # one request twice in the batch: one booking
    ], BookingPolicy(), utcnow())
    assert outcomes[0] == earlier
    assert isinstance(outcomes[1], IdempotencyConflict)
    assert isinstance(outcomes[2], NotFound) and outcomes[2].reason == "slot_not_found"
    assert outcomes[3] == outcomes[4] and isinstance(outcomes[3], pb.HoldSlotResponse)
    assert repeat_b.idem.replayed and not repeat_a.idem.replayed
    assert slot_counters(store, slot_id)["held"] == 2
    assert slot_counters(store, other_slot)["held"] == 0


def test_a_refused_request_keeps_no_key_so_asking_again_decides_again(store, clinic):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=1)
    late = request(patient(), slot_id, "late")
    outcomes = store.hold_slots([request(patient(), slot_id), late], BookingPolicy(), utcnow())
    assert [reason(o) for o in outcomes] == ["held", "slot_full"]
    with store.db.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM idempotency_keys WHERE scope = 'hold'")
        assert cur.fetchone()["n"] == 1
        # The office frees the place; the same request now succeeds.
        cur.execute("UPDATE slots SET capacity = 2 WHERE id = %s", (slot_id,))
    (again,) = store.hold_slots([request(late.patient_id, slot_id, "late")], BookingPolicy(), utcnow())
    assert isinstance(again, pb.HoldSlotResponse)


def test_each_held_booking_has_its_event_with_its_own_callers_trace(store, clinic):
    slot_id = clinic.slot(clinic.chen, local(tomorrow(), 9), capacity=5)
    traces = [{"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"} for _ in range(3)]
    outcomes = store.hold_slots([request(patient(), slot_id, trace=t) for t in traces] +
                                [request(patient(), str(uuid.uuid4()))], BookingPolicy(), utcnow())
    with store.db.transaction() as cur:
        cur.execute("SELECT event_type, payload, headers FROM outbox ORDER BY id")
        rows = cur.fetchall()
    assert [r["event_type"] for r in rows] == ["SlotHeld"] * 3
    assert [r["payload"]["booking_id"] for r in rows] == [o.booking.booking_id for o in outcomes[:3]]
    assert [r["headers"] for r in rows] == traces


def test_concurrent_batches_in_opposite_orders_neither_deadlock_nor_overbook(store, clinic):
    slots = clinic.session(clinic.chen, [local(tomorrow(), 8) + dt.timedelta(minutes=30 * i) for i in range(6)],
                           capacity=4)
    patients = [patient() for _ in range(12)]
    start = threading.Barrier(8)

    def batch(i: int):
        order = list(zip(patients, slots * 2))
        if i % 2:
            order.reverse()
        start.wait()
        # Each patient asks for a slot with a key of their own per batch.
        return store.hold_slots([request(p, s) for p, s in order], BookingPolicy(), utcnow())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [o for outcomes in pool.map(batch, range(8)) for o in outcomes]
    assert not [o for o in results if not isinstance(o, (pb.HoldSlotResponse, BookingRefused))]
    held = [o for o in results if isinstance(o, pb.HoldSlotResponse)]
    # One booking per patient per department per day, whatever the batches.
    assert sorted(o.booking.patient_id for o in held) == sorted(patients)
    for slot_id in slots:
        counters = slot_counters(store, slot_id)
        assert counters["held"] == counters["held_bookings"] <= 4


def test_batches_confirming_in_the_same_sessions_in_opposite_orders_never_deadlock(store, clinic):
    """Two workers confirm captures for bookings in sessions S1 and S2, one in
    the order S1, S2 and the other S2, S1, while a third transaction holds S2
    a moment (as another confirmation would): both finish, every booking confirmed."""
    from registration.domain.rules import CONFIRM, CapturedPayment

    for round_ in range(4):
        day = tomorrow() + dt.timedelta(days=round_)
        first = clinic.session(clinic.chen, [local(day, 8), local(day, 8, 30)], capacity=1)
        second = clinic.session(clinic.wang, [local(day, 14), local(day, 14, 30)], capacity=1)
        held = {}
        for slot_id in first + second:
            [outcome] = store.hold_slots([request(patient(), slot_id)], BookingPolicy(), utcnow())
            held[slot_id] = outcome.booking
        batches = [[held[first[0]], held[second[0]]], [held[second[1]], held[first[1]]]]
        session_of_second = store_value(store, "SELECT session_id::text FROM slots WHERE id = %s", second[0])
        blocker = store.db.pool.getconn()
        blocker.execute("SELECT id FROM sessions WHERE id = %s FOR UPDATE", (session_of_second,))
        started = threading.Barrier(3)

        def confirm(bookings):
            started.wait()
            with store.db.transaction() as cur:
                return store.apply_payments_captured(cur, [
                    (b.booking_id, CapturedPayment(f"pay-{b.booking_id}", b.patient_id, b.fee_fen), None)
                    for b in bookings], utcnow())

        with ThreadPoolExecutor(max_workers=2) as pool:
            running = [pool.submit(confirm, bookings) for bookings in batches]
            started.wait()
            threading.Event().wait(0.3)  # both batches are waiting on S2 now
            blocker.rollback()
            store.db.pool.putconn(blocker)
            decisions = [f.result(timeout=30) for f in running]
        assert decisions == [[CONFIRM, CONFIRM], [CONFIRM, CONFIRM]], f"round {round_}"


def store_value(store, sql: str, *params):
    with store.db.transaction() as cur:
        cur.execute(sql, params)
        return next(iter(cur.fetchone().values()))


def test_a_batch_of_captures_confirms_in_arrival_order_with_queue_numbers_per_session(store, clinic):
    """Captures for two sessions interleaved, one paid twice, one for no booking:
    each session's queue numbers follow its last one in the order the payments
    came, places move from held to booked, and the events say the same."""
    from registration.domain.rules import CONFIRM, CapturedPayment

    day = tomorrow()
    morning = clinic.session(clinic.chen, [local(day, 8), local(day, 8, 30)], capacity=3)
    afternoon = clinic.session(clinic.wang, [local(day, 14)], capacity=3)
    held = [store.hold_slots([request(patient(), slot_id)], BookingPolicy(), utcnow())[0].booking
            for slot_id in (morning[0], afternoon[0], morning[1], morning[0], afternoon[0])]
    with store.db.transaction() as cur:  # the morning already gave out queue numbers 1 and 2
        cur.execute("UPDATE sessions SET last_queue_number = 2 WHERE id = (SELECT session_id FROM slots WHERE id = %s)",
                    (morning[0],))

    def paid(booking, payment_id=None):
        return booking.booking_id, CapturedPayment(payment_id or f"pay-{booking.booking_id}", booking.patient_id,
                                                   booking.fee_fen), None

    with store.db.transaction() as cur:
        decisions = store.apply_payments_captured(cur, [
            paid(held[0]), paid(held[1]), paid(held[2]), paid(held[0], "pay-again"), paid(held[3]),
            (str(uuid.uuid4()), CapturedPayment("pay-nobody", "someone", 5000), None), paid(held[4]),
        ], utcnow())
        cur.execute("SELECT event_type, payload FROM outbox WHERE event_type IN ('BookingConfirmed', 'PaymentRejected') "
                    "ORDER BY id")
        events = cur.fetchall()
    assert [d == CONFIRM for d in decisions] == [True, True, True, False, True, False, True]
    queue = {e["payload"]["booking_id"]: int(e["payload"]["queue_number"])
             for e in events if e["event_type"] == "BookingConfirmed"}
    assert [queue[b.booking_id] for b in held] == [3, 1, 4, 5, 2]
    assert sorted(e["payload"]["payment_id"] for e in events if e["event_type"] == "PaymentRejected") == \
        ["pay-again", "pay-nobody"]
    with store.db.transaction() as cur:
        cur.execute("SELECT id::text, status, queue_number, payment_id FROM bookings WHERE id = ANY(%s::uuid[])",
                    ([b.booking_id for b in held],))
        rows = {r["id"]: r for r in cur.fetchall()}
    assert all(rows[b.booking_id]["status"] == "CONFIRMED" for b in held)
    assert [rows[b.booking_id]["queue_number"] for b in held] == [3, 1, 4, 5, 2]
    assert rows[held[0].booking_id]["payment_id"] == f"pay-{held[0].booking_id}"
    for slot_id, booked in ((morning[0], 2), (morning[1], 1), (afternoon[0], 2)):
        counters = slot_counters(store, slot_id)
        assert (counters["held"], counters["booked"], counters["booked_bookings"]) == (0, booked, booked)
