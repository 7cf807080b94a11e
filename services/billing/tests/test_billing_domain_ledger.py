"""The ledger's rules, in memory: every entry balances, refunds never exceed captures."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.domain import ledger, payments
from billing.domain.ledger import JournalEntry, JournalLine, Side
from billing.domain.payments import PaymentStatus
from billing.domain.errors import AlreadyRefunded, InvalidPaymentTransition, NotRefundable, UnbalancedJournalEntry

NOW = dt.datetime(2026, 11, 26, 1, 0, tzinfo=dt.timezone.utc)
CLEARING = ledger.provider_clearing("sandbox")


def test_capture_debits_the_provider_clearing_and_credits_registration_fees():
    entry = ledger.capture_entry("p1", 5000, "sandbox", NOW)
    assert entry.kind is ledger.EntryKind.REGISTRATION_FEE_CAPTURE
    assert [(line.account, line.side, line.amount_fen) for line in entry.lines] == [
        (CLEARING, Side.DEBIT, 5000), (ledger.REGISTRATION_FEES, Side.CREDIT, 5000),
    ]
    assert entry.debits == entry.credits == entry.amount_fen == 5000


def test_refund_reverses_the_capture():
    entry = ledger.refund_entry("p1", "r1", 5000, "sandbox", NOW)
    assert entry.refund_id == "r1" and entry.payment_id == "p1"
    trial = ledger.trial_balance_of([ledger.capture_entry("p1", 5000, "sandbox", NOW), entry])
    assert {b.account: b.balance_fen for b in trial.balances} == {CLEARING: 0, ledger.REGISTRATION_FEES: 0}
    assert trial.total_debit_fen == trial.total_credit_fen == 10000


def test_a_charge_given_back_after_failure_is_journaled_as_its_capture_and_its_refund():
    # Both are on the provider's statement, each dated when it moved there.
    capture, refund = ledger.returned_charge_entries("p1", "r1", 5000, "sandbox", NOW, NOW + dt.timedelta(hours=1))
    assert (capture.kind, capture.payment_id, capture.effective_at, capture.amount_fen) == (
        ledger.EntryKind.REGISTRATION_FEE_CAPTURE, "p1", NOW, 5000)
    assert (refund.kind, refund.payment_id, refund.refund_id, refund.effective_at, refund.amount_fen) == (
        ledger.EntryKind.REGISTRATION_FEE_REFUND, "p1", "r1", NOW + dt.timedelta(hours=1), 5000)
    trial = ledger.trial_balance_of([capture, refund])
    assert trial.balanced and {b.account: b.balance_fen for b in trial.balances} == {
        CLEARING: 0, ledger.REGISTRATION_FEES: 0}


def test_an_unbalanced_entry_cannot_be_made():
    with pytest.raises(UnbalancedJournalEntry):
        JournalEntry("e", ledger.EntryKind.REGISTRATION_FEE_CAPTURE,
                     (JournalLine(CLEARING, Side.DEBIT, 100), JournalLine(ledger.REGISTRATION_FEES, Side.CREDIT, 99)),
                     NOW)


def test_an_entry_needs_two_lines():
    with pytest.raises(UnbalancedJournalEntry):
        JournalEntry("e", ledger.EntryKind.REGISTRATION_FEE_CAPTURE, (JournalLine(CLEARING, Side.DEBIT, 100),), NOW)


@pytest.mark.parametrize("amount", [0, -5, 1.5, True])
def test_a_line_holds_a_positive_whole_number_of_fen(amount):
    with pytest.raises(UnbalancedJournalEntry):
        JournalLine(CLEARING, Side.DEBIT, amount)


def test_a_line_names_a_typed_account():
    with pytest.raises(UnbalancedJournalEntry):
        JournalLine("registration_fees", Side.CREDIT, 100)


def test_balances_are_signed_by_the_normal_side_of_the_account():
    trial = ledger.trial_balance(ledger.CHART, [(CLEARING, 700, 200), (ledger.REGISTRATION_FEES, 200, 700)])
    balances = {b.account: b for b in trial.balances}
    assert balances[CLEARING].balance_fen == 500  # an asset: debits minus credits
    assert balances[ledger.REGISTRATION_FEES].balance_fen == 500  # revenue: credits minus debits
    assert trial.balanced


def test_unused_accounts_of_the_chart_show_with_zero():
    trial = ledger.trial_balance(ledger.CHART, [])
    assert {b.account for b in trial.balances} == set(ledger.CHART)
    assert trial.total_debit_fen == trial.total_credit_fen == 0


# Any sequence of captures, failures and refunds, on any payments.
operations = st.lists(
    st.tuples(st.sampled_from(["capture", "fail", "refund", "unknown"]), st.integers(0, 5)), max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=operations, fees=st.lists(st.integers(1, 100_000), min_size=6, max_size=6))
def test_any_sequence_keeps_the_books_balanced_and_never_refunds_more_than_captured(ops, fees):
    book = {
        i: payments.Payment(payment_id=f"p{i}", booking_id=f"b{i}", patient_id="pat", amount_fen=fee,
                            status=PaymentStatus.PENDING, provider="sandbox", created_at=NOW)
        for i, fee in enumerate(fees)
    }
    entries: list[JournalEntry] = []
    for op, i in ops:
        payment = book[i]
        try:
            if op == "capture":
                book[i] = payments.transition(payment, PaymentStatus.CAPTURED, settled_at=NOW)
                entries.append(ledger.capture_entry(payment.payment_id, payment.amount_fen, "sandbox", NOW))
            elif op == "fail":
                book[i] = payments.transition(payment, PaymentStatus.FAILED, failure_reason="card_declined")
            elif op == "unknown":
                book[i] = payments.transition(payment, PaymentStatus.UNKNOWN)
            else:
                book[i] = payments.refund(payment)
                entries.append(ledger.refund_entry(payment.payment_id, f"r{i}", payment.amount_fen, "sandbox", NOW))
        except (InvalidPaymentTransition, NotRefundable, AlreadyRefunded):
            continue  # a refused operation changes nothing

    trial = ledger.trial_balance_of(entries)
    assert trial.total_debit_fen == trial.total_credit_fen
    for payment in book.values():
        captured = sum(e.amount_fen for e in entries
                       if e.payment_id == payment.payment_id and e.kind is ledger.EntryKind.REGISTRATION_FEE_CAPTURE)
        refunded = sum(e.amount_fen for e in entries
                       if e.payment_id == payment.payment_id and e.kind is ledger.EntryKind.REGISTRATION_FEE_REFUND)
        assert captured in (0, payment.amount_fen)  # captured once at most
        assert refunded <= captured
        assert payment.refunded_fen == refunded
    # What the provider holds for the hospital is what was captured and not refunded.
    clearing = {b.account: b.balance_fen for b in trial.balances}[CLEARING]
    assert clearing == sum(p.amount_fen for p in book.values() if p.status is PaymentStatus.CAPTURED)
    assert clearing >= 0
