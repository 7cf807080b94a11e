"""Payment tickets: what registration signs billing reads back exactly, and
anything else (another key, a changed byte, not a ticket at all) reads as
no ticket."""
from __future__ import annotations

import base64
import datetime as dt

import pytest
from tuoguan_common.payment_tickets import HeldBooking, PaymentTickets

KEY = b"k" * 32
HELD = HeldBooking(booking_id="6d1b0c6e-1111-4000-8000-000000000001", patient_id="patient-42", fee_fen=5000,
                   hold_expires_at=dt.datetime(2026, 11, 27, 7, 10, tzinfo=dt.timezone.utc))


def test_a_ticket_reads_back_as_what_was_signed():
    tickets = PaymentTickets(KEY)
    ticket = tickets.issue(HELD)
    assert tickets.read(ticket) == HELD
    assert tickets.issue(HELD) == ticket, "the same hold, the same ticket (a replayed hold answers the same)"
    assert ticket.isascii() and len(ticket) < 200


def test_a_ticket_signed_under_another_key_is_no_ticket():
    assert PaymentTickets(b"x" * 32).read(PaymentTickets(KEY).issue(HELD)) is None


@pytest.mark.parametrize("change", [
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # the signature
    lambda t: "2" + t[1:],  # the version
    lambda t: t.rsplit(".", 1)[0],  # no signature
    lambda t: "",
    lambda t: "1..",
    lambda t: "1.@@@.@@@",
    lambda t: "not a ticket",
])
def test_a_changed_or_broken_ticket_is_no_ticket(change):
    assert PaymentTickets(KEY).read(change(PaymentTickets(KEY).issue(HELD))) is None


def test_a_patient_cannot_lower_the_fee_or_take_over_the_booking():
    tickets = PaymentTickets(KEY)
    version, body, mac = tickets.issue(HELD).split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for forged in (raw.replace(b"5000", b"0001"), raw.replace(b"patient-42", b"patient-43")):
        assert forged != raw
        forged_body = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
        assert tickets.read(f"{version}.{forged_body}.{mac}") is None


def test_the_key_comes_from_the_environment_and_a_short_one_is_refused():
    assert PaymentTickets.from_env({}) is None
    from_env = PaymentTickets.from_env({"TUOGUAN_PAYMENT_TICKET_KEY": "k" * 32})
    assert from_env is not None and from_env.read(PaymentTickets(KEY).issue(HELD)) == HELD
    with pytest.raises(SystemExit, match="at least 32 bytes"):
        PaymentTickets.from_env({"TUOGUAN_PAYMENT_TICKET_KEY": "short"})
    with pytest.raises(ValueError):
        PaymentTickets(b"short")
