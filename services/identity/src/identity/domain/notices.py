"""Texts that tell patients of something that happened to their booking, in
Chinese: today, that the office suspended the session they booked (the doctor
is ill), sent by identity's worker (``identity.worker``) on registration's
``SessionSuspended``.

One notice per cancelled booking, keyed by the booking's id: a redelivered or
repeated event finds the notice already there and sends nothing more. The
text names the day, the period, the department and the doctor, and whether
the fee goes back; never the patient (a phone's lock screen shows it).

``NoticeRetry`` says when a send that failed (the SMS gateway down, slow or
refusing) is tried again, and after how many tries it is given up (counted
and logged: a person then phones the patient).

Pure: no I/O, time is a parameter.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

SESSION_SUSPENDED = "session_suspended"
KINDS = (SESSION_SUSPENDED,)

PERIODS = {"morning": "上午", "afternoon": "下午", "evening": "晚间"}
REFUNDED = "挂号费将原路退回。"
DEFAULT_SIGN_NAME = "医院"
# The stable key a notice's sends carry (the gateway's Idempotency-Key): a
# send tried again after a timeout, or after the worker died before it wrote
# down that the text went, is dropped by the gateway as a repeat.
_NOTICE_KEYS = uuid.UUID("6f0d7f56-53c1-4b6e-9d54-2d1f3b1c9a11")


@dataclass(frozen=True)
class PatientNotice:
    """What one text says; nothing in it is the patient's."""

    booking_id: str
    service_date: str  # YYYY-MM-DD, the hospital's calendar
    period: str = ""  # morning, afternoon, evening; "" when the event did not say
    department: str = ""
    doctor: str = ""
    refund_due: bool = False
    kind: str = SESSION_SUSPENDED

    @property
    def request_id(self) -> str:
        return uuid.uuid5(_NOTICE_KEYS, f"{self.kind}:{self.booking_id}").hex

    def params(self) -> dict:
        """What the store keeps of the notice (and the gateway's template is given)."""
        return {"service_date": self.service_date, "period": self.period, "department": self.department,
                "doctor": self.doctor, "refund_due": self.refund_due}

    @classmethod
    def from_params(cls, booking_id: str, kind: str, params: dict) -> PatientNotice:
        return cls(booking_id=booking_id, kind=kind, service_date=params.get("service_date", ""),
                   period=params.get("period", ""), department=params.get("department", ""),
                   doctor=params.get("doctor", ""), refund_due=bool(params.get("refund_due")))

    @property
    def day(self) -> str:
        """12月1日; the date as given when it is not one."""
        try:
            date = dt.date.fromisoformat(self.service_date)
        except ValueError:
            return self.service_date
        return f"{date.month}月{date.day}日"

    @property
    def visit(self) -> str:
        """12月1日上午 消化内科 张建国医生: what the patient booked, as much as is known."""
        parts = [self.day + PERIODS.get(self.period, "")]
        if self.department:
            parts.append(self.department)
        if self.doctor:
            parts.append(f"{self.doctor}医生")
        return " ".join(parts)

    def text(self, sign_name: str = DEFAULT_SIGN_NAME) -> str:
        refund = REFUNDED if self.refund_due else ""
        return f"【{sign_name}】您预约的{self.visit} 门诊已停诊，{refund}如需就诊请重新预约。"

    def template_params(self) -> dict:
        """The SMS gateway's template parameters (and the whole text, for a gateway that takes one)."""
        return {"date": self.day, "period": PERIODS.get(self.period, ""), "department": self.department,
                "doctor": self.doctor, "refund": REFUNDED if self.refund_due else ""}


@dataclass(frozen=True)
class NoticeRetry:
    """A failed send is tried again ``first`` later, each next wait twice the
    last, at most ``longest``, until ``max_attempts`` sends have failed: then
    it is given up. With the defaults, about three hours of trying."""

    first: dt.timedelta = dt.timedelta(seconds=30)
    longest: dt.timedelta = dt.timedelta(minutes=30)
    max_attempts: int = 12

    def after_failure(self, attempts: int, now: dt.datetime) -> dt.datetime | None:
        """When to try again once ``attempts`` sends have failed; None: give up."""
        if attempts >= self.max_attempts:
            return None
        wait = min(self.first * (2 ** max(0, attempts - 1)), self.longest)
        return now + wait
