"""Helpers of registration's tests: tokens, reason codes, a small clinic with
slots at chosen times, the counters of a slot."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import grpc
import pytest
from registration.domain.model import Period
from registration.domain.policy import ReleasePolicy
from registration.domain.schedule import PlannedSession, PlannedSlot
from registration.store import Store
from tuoguan.registration.v1 import registration_pb2 as pb
from tuoguan_common import auth
from tuoguan_common.grpc_server import REASON_KEY
from tuoguan_common.outbox import utcnow

SHANGHAI = ReleasePolicy()






@dataclass
class People:
    issuer: auth.TokenIssuer

    def patient(self) -> tuple[str, tuple]:
        patient_id = str(uuid.uuid4())
        return patient_id, auth.bearer_metadata(self.issuer.issue(patient_id, [auth.PATIENT]))

    def office(self) -> tuple:
        return auth.bearer_metadata(self.issuer.issue(str(uuid.uuid4()), [auth.REGISTRATION_OFFICE]))

    def with_roles(self, *roles: str) -> tuple:
        return auth.bearer_metadata(self.issuer.issue(str(uuid.uuid4()), list(roles)))



def reason_of(error: grpc.RpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get(REASON_KEY)


def refused(call, *args, **kwargs) -> tuple[grpc.StatusCode, str | None]:
    """Calls an RPC that must fail; returns its status code and reason."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value.code(), reason_of(caught.value)


def key() -> str:
    return str(uuid.uuid4())


def local(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return SHANGHAI.local_moment(day, dt.time(hour, minute))


def tomorrow() -> dt.date:
    return SHANGHAI.local_date(utcnow()) + dt.timedelta(days=1)


class Clinic:
    """Departments, doctors and hand-made sessions, written through the store."""

    def __init__(self, store: Store):
        self.store = store
        with store.db.transaction() as cur:
            for title, fee in (("resident", 1000), ("attending", 2000), ("associate_chief", 3000), ("chief", 5000)):
                store.save_title_fee(cur, title, fee)
            self.thoracic = store.save_department(cur, "THOR", "胸外科", "Thoracic Surgery")
            self.breast = store.save_department(cur, "BRST", "乳腺外科", "Breast Surgery")
            self.oncology = store.save_department(cur, "MONC", "肿瘤内科", "Medical Oncology")
            self.chen = store.save_doctor(cur, "D1", self.thoracic, "陈建国", "chief", "肺癌微创手术",
                                          "Lung cancer surgery")
            self.lin = store.save_doctor(cur, "D2", self.thoracic, "林晓东", "attending", "oesophageal cancer")
            self.wang = store.save_doctor(cur, "D3", self.breast, "王丽华", "associate_chief", "breast surgery")
            self.zhang = store.save_doctor(cur, "D4", self.oncology, "张卫东", "resident", "immunotherapy")
        self.department_of = {self.chen: self.thoracic, self.lin: self.thoracic, self.wang: self.breast,
                              self.zhang: self.oncology}
        self.fee_of = {self.chen: 5000, self.lin: 2000, self.wang: 3000, self.zhang: 1000}

    def session(self, doctor_id: str, starts: list[dt.datetime], *, capacity: int = 5, minutes: int = 30,
                released_at: dt.datetime | None = None, service_date: dt.date | None = None,
                period: Period | None = None, fee_fen: int | None = None) -> list[str]:
        """One session of ``doctor_id`` with a slot at each start (at the fee of
        the doctor's title unless ``fee_fen`` is given); returns the slot ids in order."""
        service_date = service_date or SHANGHAI.local_date(starts[0])
        if period is None:
            hour = starts[0].astimezone(SHANGHAI.zone).hour
            period = Period.MORNING if hour < 12 else Period.AFTERNOON if hour < 18 else Period.EVENING
        planned = PlannedSession(
            None, doctor_id, self.department_of[doctor_id], service_date, period,
            released_at or utcnow() - dt.timedelta(minutes=1), self.fee_of[doctor_id] if fee_fen is None else fee_fen,
            tuple(PlannedSlot(s, s + dt.timedelta(minutes=minutes), capacity) for s in starts),
        )
        assert self.store.publish([planned]) == (1, len(starts)), "a session for that doctor, day and period exists"
        with self.store.db.transaction() as cur:
            cur.execute(
                "SELECT s.id FROM slots s JOIN sessions se ON se.id = s.session_id "
                "WHERE se.doctor_id = %s AND se.service_date = %s AND se.period = %s ORDER BY s.starts_at",
                (doctor_id, service_date, period),
            )
            return [str(r["id"]) for r in cur.fetchall()]

    def slot(self, doctor_id: str, starts_at: dt.datetime, **kwargs) -> str:
        return self.session(doctor_id, [starts_at], **kwargs)[0]



def slot_counters(store: Store, slot_id: str) -> dict:
    with store.db.transaction() as cur:
        cur.execute(
            "SELECT capacity, booked, held, "
            "(SELECT count(*) FROM bookings b WHERE b.slot_id = s.id AND b.status = 'HELD') AS held_bookings, "
            "(SELECT count(*) FROM bookings b WHERE b.slot_id = s.id "
            " AND b.status IN ('CONFIRMED', 'CHECKED_IN', 'NO_SHOW')) AS booked_bookings "
            "FROM slots s WHERE id = %s",
            (slot_id,),
        )
        return cur.fetchone()


def outbox_events(store: Store, event_type: str) -> list[dict]:
    """The payloads of this type the service has published (or will), in order."""
    with store.db.transaction() as cur:
        cur.execute("SELECT payload FROM outbox WHERE event_type = %s ORDER BY id", (event_type,))
        return [r["payload"] for r in cur.fetchall()]


def hold(stub, metadata, slot_id: str, idempotency_key: str | None = None) -> pb.Booking:
    return stub.HoldSlot(pb.HoldSlotRequest(slot_id=slot_id, idempotency_key=idempotency_key or key()),
                         metadata=metadata).booking
