"""Steps a patient or a staff member takes through the gateway's HTTP API."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import sys
import time
import uuid

import httpx
from identity.domain.password_reset import mask_phone

from tuoguan_common.net import free_port

_phones = itertools.count(random.randint(0, 10_000_000))
# The platform under test (tests/conftest.py sets it): identity texts codes to
# its log there, with the phone number masked, and the steps read them.
platform = None


def _texted(process: str, what: str, phone: str) -> list[dict]:
    """The log records ``what`` (the message) that identity's ``process`` (identity-api, identity-worker)
    wrote for ``phone`` through the development notifier, oldest first: what reached the patient's phone."""
    masked = mask_phone(phone)
    return [record for name in platform.procs if name.startswith(process)
            for record in (json.loads(line) for line in platform.log(name).splitlines() if line.startswith("{"))
            if record.get("msg") == what and record.get("phone_masked") == masked]


def texted_code(phone: str, what: str = "sign-up code", timeout: float = 15.0) -> str:
    """The last code of the text ``what`` identity's development notifier sent
    ``phone`` (to its log): what the patient reads on the phone."""
    deadline = time.monotonic() + timeout
    while not (sent := _texted("identity-api", what, phone)):
        assert time.monotonic() < deadline, f"identity logged no {what} for {mask_phone(phone)}"
        time.sleep(0.1)
    return sent[-1]["code"]


def texted_notices(phone: str) -> list[str]:
    """The texts to patients identity's worker sent ``phone`` through the
    development notifier (to its log, the phone masked): what the patient reads."""
    return [record["text"] for record in _texted("identity-worker", "patient notice", phone)]


def new_phone() -> str:
    return f"139{next(_phones) % 100_000_000:08d}"


def sign_in(http: httpx.Client, login: str, password: str) -> dict[str, str]:
    r = http.post("/api/v1/auth/signin", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def new_patient(http: httpx.Client, name: str = "王小明", phone: str | None = None) -> dict[str, str]:
    phone = phone or new_phone()
    asked = http.post("/api/v1/auth/signup/code", json={"phone": phone})
    assert asked.status_code == 202, asked.text
    r = http.post("/api/v1/auth/signup", json={"phone": phone, "code": texted_code(phone), "password": "Secret1234",
                                               "display_name": name},
                  headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code in (200, 201), r.text
    return sign_in(http, phone, "Secret1234")


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def department(http: httpx.Client, index: int) -> str:
    """The id of the index-th seeded department: each test books in its own."""
    departments = http.get("/api/v1/departments").json()["departments"]
    return departments[index % len(departments)]["department_id"]


def available_slots(http: httpx.Client, department_id: str) -> list[dict]:
    params = {"only_available": "true", "department_id": department_id}
    r = http.get("/api/v1/slots", params=params)
    assert r.status_code == 200, r.text
    return r.json()["slots"]


def wait_booking(http: httpx.Client, auth: dict, booking_id: str, predicate, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = http.get(f"/api/v1/bookings/{booking_id}", headers=auth)
        assert r.status_code == 200, r.text
        last = r.json()
        if predicate(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"booking never reached the expected state; last seen: {last}")


def log_a_minute(http: httpx.Client, auth: dict, ticket_id: str, **fields) -> httpx.Response:
    """Logs a minute of work, this minute, on a ticket opened moments ago: a worklog may not start before the
    minute its ticket was opened nor end after now (with a minute of clock skew), so on a fresh ticket the
    current minute is the time there is. One engineer's worklogs may not overlap and the demo engineers work
    several journeys: when another journey took this minute, the next is waited for (twice at most)."""
    for attempt in range(3):
        start = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
        reply = http.post(f"/api/v1/tickets/{ticket_id}/worklogs", headers={**auth, **key()},
                          json={"activity": "repair", **fields, "started_at": start.isoformat(), "minutes": 1})
        if attempt == 2 or reply.status_code != 409 or reply.json()["error"]["reason"] != "worklog_overlaps":
            return reply
        time.sleep((start + dt.timedelta(minutes=1) - dt.datetime.now(dt.timezone.utc)).total_seconds() + 0.5)
    return reply


def start_narrow_gateway(platform, name: str, **settings: str) -> str:
    """A second gateway on ``platform``'s services, admitting one patient at a time to booking (its
    waiting room in a namespace of its own); its base URL. ``settings``: more of its environment
    (WAITING_ROOM_NEW_TICKETS_PER_ADDRESS="2"). The platform stops it with the rest."""
    port = free_port()
    env = {**platform.env(), "GATEWAY_PORT": str(port), "WAITING_ROOM_CAPACITY": "1",
           "WAITING_ROOM_NAMESPACE": f"tuoguan:test-waiting-room:{uuid.uuid4().hex}", **settings}
    platform.processes.start(name, [sys.executable, "-m", "gateway"], env, ready_port=port)
    return f"http://127.0.0.1:{port}"
