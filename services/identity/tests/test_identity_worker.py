"""Identity's worker as its own process on the real PostgreSQL and RabbitMQ,
texting through the production adapter (``sms.HttpSmsNotifier``) to a real
local HTTP server standing in for the SMS gateway (``sms_gateway``,
conftest.py): a suspended session's patients get one text per cancelled
booking, once, whatever the broker redelivers or the gateway does."""
from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from functools import partial

import pytest

from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan_common.testing import free_port, publish_event, wait_for, wait_for_consumers

pytestmark = pytest.mark.integration

QUEUE = "evt-registration-SessionSuspended--identity.on_session_suspended"
FIRST, SECOND, STAFF = "13912345678", "13712340001", "13600000000"


def add_account(db, login: str, role: str = "patient") -> str:
    with db.transaction() as cur:
        cur.execute("INSERT INTO accounts (login, password_hash, display_name, roles) "
                    "VALUES (%s, '$argon2id$v=19$x', '王秀英', ARRAY[%s]) RETURNING id::text AS id", (login, role))
        return cur.fetchone()["id"]


def start_worker(processes, infra, db, **settings: str) -> int:
    """The identity worker on the test's database and broker; returns its metrics port."""
    metrics_port = free_port()
    processes.start("identity-worker", [sys.executable, "-m", "tuoguan_common.worker_main", "identity"], {
        "IDENTITY_DATABASE_URL": db.url,
        "AMQP_URI": infra["amqp_uri"],
        "IDENTITY_WORKER_METRICS_PORT": str(metrics_port),
        "IDENTITY_NOTICE_SWEEP_SECONDS": "0.2",
        "IDENTITY_NOTICE_RETRY_FIRST_SECONDS": "0.3",
        "IDENTITY_NOTICE_RETRY_MAX_SECONDS": "0.5",
        "IDENTITY_SMS_TIMEOUT_SECONDS": "0.5",
        **settings,
    }, ready_port=metrics_port)
    # The handler's queue is shared by every identity worker on the broker: ours must be the only one.
    wait_for_consumers(infra["amqp_uri"], [QUEUE], exactly=1, timeout=30,
                       message="the worker's event queue, with this worker its only consumer")
    return metrics_port


def suspension(*bookings: tuple[str, str, bool]) -> registration_events.SessionSuspended:
    """A suspended morning session of 张建国 (消化内科) on 1 December; ``bookings``: (booking id, patient id, refund due)."""
    return registration_events.SessionSuspended(
        session_id=str(uuid.uuid4()), doctor_id=str(uuid.uuid4()), service_date="2026-12-01", reason="医生病假",
        cancelled_booking_ids=[b for b, _, _ in bookings], patient_ids=sorted({p for _, p, _ in bookings}),
        period="morning", doctor_name="张建国", department_name="消化内科",
        bookings=[registration_events.SuspendedBooking(booking_id=b, patient_id=p, refund_due=r, fee_fen=5000 if r else 0,
                                                       starts_at="2026-12-01T01:00:00Z") for b, p, r in bookings])


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def counted(port: int, outcome: str) -> float:
    prefix = f'tuoguan_identity_patient_notices_total{{kind="session_suspended",outcome="{outcome}"}} '
    for line in scrape(port).splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


def handled(port: int, outcome: str) -> float:
    prefix = ('tuoguan_events_handled_total{event_type="SessionSuspended",handler="on_session_suspended",'
              f'outcome="{outcome}",service="identity"}} ')
    for line in scrape(port).splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


def notices(db) -> dict[str, dict]:
    with db.transaction() as cur:
        cur.execute("SELECT booking_id, status, skip_reason, attempts FROM patient_notices")
        return {r["booking_id"]: r for r in cur.fetchall()}


def to(sms_gateway, phone: str) -> list[dict]:
    return [m for m in sms_gateway.received if m["body"]["phone"] == phone]


@pytest.fixture
def db(identity_db):
    return identity_db


def test_each_cancelled_booking_is_texted_once_and_patients_without_a_phone_are_counted(
        infra, db, processes, sms_gateway):
    first, second, staff = add_account(db, FIRST), add_account(db, SECOND), add_account(db, STAFF, "engineer")
    stranger = str(uuid.uuid4())  # no account here
    paid, held, unknown, of_staff = (str(uuid.uuid4()) for _ in range(4))
    port = start_worker(processes, infra, db, IDENTITY_SMS_URL=sms_gateway.url, IDENTITY_SMS_SIGN_NAME="肿瘤医院")
    event = suspension((paid, first, True), (held, second, False), (unknown, stranger, True), (of_staff, staff, False))
    publish = partial(publish_event, infra["amqp_uri"], "registration")
    event_id = publish(event)

    wait_for(lambda: len(sms_gateway.received) == 2, timeout=20, message="two texts")
    wait_for(lambda: counted(port, "sent") == 2 and counted(port, "no_phone") == 2, timeout=10,
             message="the texts and the patients without a phone counted")
    [to_first], [to_second] = to(sms_gateway, FIRST), to(sms_gateway, SECOND)
    assert to_first["body"]["template"] == "session_suspended"
    assert to_first["body"]["params"]["text"] == (
        "【肿瘤医院】您预约的12月1日上午 消化内科 张建国医生 门诊已停诊，挂号费将原路退回。如需就诊请重新预约。")
    assert to_second["body"]["params"]["text"] == (
        "【肿瘤医院】您预约的12月1日上午 消化内科 张建国医生 门诊已停诊，如需就诊请重新预约。")
    assert to_first["body"]["params"]["refund"] and not to_second["body"]["params"]["refund"]
    assert "王秀英" not in json.dumps([m["body"] for m in sms_gateway.received], ensure_ascii=False)
    assert to_first["headers"]["idempotency-key"] != to_second["headers"]["idempotency-key"]
    assert {b: (n["status"], n["skip_reason"]) for b, n in notices(db).items()} == {
        paid: ("sent", None), held: ("sent", None), unknown: ("skipped", "no_phone"),
        of_staff: ("skipped", "no_phone")}

    # Redelivered, and told again under another event id: nothing more.
    publish(event, event_id)
    publish(event)
    wait_for(lambda: handled(port, "duplicate") == 1 and handled(port, "ok") == 2, timeout=10,
             message="the redelivery and the repeat under another id handled")
    assert len(sms_gateway.received) == 2
    assert (counted(port, "sent"), counted(port, "no_phone")) == (2, 2)

    log = processes.log("identity-worker")
    assert FIRST not in log and SECOND not in log and "139****5678" in log


def test_a_failing_gateway_is_tried_again_until_it_takes_the_text_once(infra, db, processes, sms_gateway):
    add_account(db, FIRST)
    patient = add_account(db, SECOND)
    booking = str(uuid.uuid4())
    sms_gateway.fail("error")
    port = start_worker(processes, infra, db, IDENTITY_SMS_URL=sms_gateway.url)
    publish_event(infra["amqp_uri"], "registration", suspension((booking, patient, True)))

    wait_for(lambda: counted(port, "retrying") >= 2, timeout=20, message="the first send and a retry failed")
    assert counted(port, "sent") == 0
    sms_gateway.fail("timeout")  # the gateway takes it but answers too late: the text may have gone
    tried = len(sms_gateway.received)
    wait_for(lambda: len(sms_gateway.received) > tried, timeout=20, message="a send that timed out")
    sms_gateway.recover()
    wait_for(lambda: counted(port, "sent") == 1, timeout=20, message="the text sent once the gateway is back")
    attempts = notices(db)[booking]["attempts"]
    received = list(sms_gateway.received)
    assert len(received) == attempts and notices(db)[booking]["status"] == "sent"
    # Every try is the same message: the gateway drops a repeat of one it already took.
    assert len({m["headers"]["idempotency-key"] for m in received}) == 1
    assert {m["body"]["phone"] for m in received} == {SECOND}
    processes.stop_all()  # nothing is tried after it was sent
    assert len(sms_gateway.received) == attempts
    metrics_log = processes.log("identity-worker")
    assert SECOND not in metrics_log and "137****0001" in metrics_log


def test_a_notice_the_gateway_never_takes_is_given_up_after_its_last_attempt_and_counted(
        infra, db, processes, sms_gateway):
    patient = add_account(db, FIRST)
    booking = str(uuid.uuid4())
    sms_gateway.fail("down")
    port = start_worker(processes, infra, db, IDENTITY_SMS_URL=sms_gateway.url, IDENTITY_NOTICE_MAX_ATTEMPTS="3")
    publish_event(infra["amqp_uri"], "registration", suspension((booking, patient, True)))

    wait_for(lambda: counted(port, "given_up") == 1, timeout=20, message="the notice given up")
    assert counted(port, "retrying") == 2 and counted(port, "sent") == 0
    assert notices(db)[booking]["status"] == "given_up" and notices(db)[booking]["attempts"] == 3
    sms_gateway.recover()
    wait_for(lambda: 'tuoguan_identity_patient_notices_pending 0.0' in scrape(port), timeout=10,
             message="nothing pending")
    assert sms_gateway.received == []
    log = processes.log("identity-worker")
    assert "patient notice given up" in log and FIRST not in log


def test_without_a_gateway_the_development_adapter_writes_the_text_to_the_log_with_the_phone_masked(
        infra, db, processes):
    patient = add_account(db, FIRST)
    port = start_worker(processes, infra, db, IDENTITY_RESET_CODES_TO_LOG="true")
    publish_event(infra["amqp_uri"], "registration", suspension((str(uuid.uuid4()), patient, True)))

    wait_for(lambda: counted(port, "sent") == 1, timeout=20, message="the notice written to the log")
    lines = [json.loads(line) for line in processes.log("identity-worker").splitlines()
             if line.startswith("{") and '"patient notice"' in line]
    [line] = lines
    assert line["phone_masked"] == "139****5678"
    assert line["text"] == "【医院】您预约的12月1日上午 消化内科 张建国医生 门诊已停诊，挂号费将原路退回。如需就诊请重新预约。"
    assert FIRST not in processes.log("identity-worker")
