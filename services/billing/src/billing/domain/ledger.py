"""The double-entry ledger, in integer fen.

Every movement of money is a journal entry of two or more lines; each line
debits or credits one account with a positive amount, and the debits of an
entry equal its credits. The database checks the same rule when the entry's
transaction commits, so neither a bug here nor a hand-written INSERT can
unbalance the books.

Accounts are named ``<type>:<name>[:<detail>]``. The type fixes the normal
side: assets and expenses grow with debits; liabilities, equity and revenue
grow with credits. The contractor's settlement will add its own accounts
(expense, payable) and entry kinds beside the ones below.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from dataclasses import dataclass
from typing import Iterable

from .errors import UnbalancedJournalEntry


class Side(enum.StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


ACCOUNT_PATTERN = re.compile(r"^(asset|liability|equity|revenue|expense):[a-z0-9_]+(:[a-z0-9_]+)*$")
DEBIT_NORMAL_TYPES = frozenset({"asset", "expense"})

REGISTRATION_FEES = "revenue:registration_fees"


def provider_clearing(provider: str) -> str:
    """What the provider has collected for the hospital and not yet paid out."""
    return f"asset:provider_clearing:{provider}"


# The chart of accounts; migrations create the same rows in ledger_accounts
# (a test keeps the two equal), so a line cannot name an account that is not here.
CHART: dict[str, str] = {
    provider_clearing("sandbox"): "Fees collected by the sandbox payment provider, not yet paid out",
    REGISTRATION_FEES: "Registration fees earned, net of refunds",
}


class EntryKind(enum.StrEnum):
    REGISTRATION_FEE_CAPTURE = "registration_fee_capture"
    REGISTRATION_FEE_REFUND = "registration_fee_refund"


def normal_side(account: str) -> Side:
    return Side.DEBIT if account.split(":", 1)[0] in DEBIT_NORMAL_TYPES else Side.CREDIT


@dataclass(frozen=True)
class JournalLine:
    account: str
    side: Side
    amount_fen: int

    def __post_init__(self) -> None:
        if not ACCOUNT_PATTERN.match(self.account):
            raise UnbalancedJournalEntry(f"not an account name: {self.account!r}")
        # bool is an int subclass; a True fen is a bug, not one fen.
        if type(self.amount_fen) is not int or self.amount_fen <= 0:
            raise UnbalancedJournalEntry(f"a line's amount must be a positive whole number of fen: {self.amount_fen!r}")


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    kind: EntryKind
    lines: tuple[JournalLine, ...]
    # When the money moved (the provider's time): the entry's business date.
    effective_at: dt.datetime
    payment_id: str | None = None
    refund_id: str | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedJournalEntry(f"a journal entry needs two lines or more, got {len(self.lines)}")
        if self.debits != self.credits:
            raise UnbalancedJournalEntry(
                f"journal entry does not balance: debits {self.debits} != credits {self.credits}")

    @property
    def debits(self) -> int:
        return sum(line.amount_fen for line in self.lines if line.side is Side.DEBIT)

    @property
    def credits(self) -> int:
        return sum(line.amount_fen for line in self.lines if line.side is Side.CREDIT)

    @property
    def amount_fen(self) -> int:
        return self.debits


def capture_entry(payment_id: str, amount_fen: int, provider: str, captured_at: dt.datetime) -> JournalEntry:
    """The fee is earned and the provider holds it for us."""
    return JournalEntry(
        entry_id=str(uuid.uuid4()),
        kind=EntryKind.REGISTRATION_FEE_CAPTURE,
        lines=(
            JournalLine(provider_clearing(provider), Side.DEBIT, amount_fen),
            JournalLine(REGISTRATION_FEES, Side.CREDIT, amount_fen),
        ),
        effective_at=captured_at,
        payment_id=payment_id,
    )


def refund_entry(payment_id: str, refund_id: str, amount_fen: int, provider: str,
                 refunded_at: dt.datetime) -> JournalEntry:
    """The fee goes back to the patient out of what the provider holds.

    It debits the revenue account itself, so the account's credits are the
    gross fees, its debits the refunds and its balance the net.
    """
    return JournalEntry(
        entry_id=str(uuid.uuid4()),
        kind=EntryKind.REGISTRATION_FEE_REFUND,
        lines=(
            JournalLine(REGISTRATION_FEES, Side.DEBIT, amount_fen),
            JournalLine(provider_clearing(provider), Side.CREDIT, amount_fen),
        ),
        effective_at=refunded_at,
        payment_id=payment_id,
        refund_id=refund_id,
    )


def returned_charge_entries(payment_id: str, refund_id: str, amount_fen: int, provider: str,
                            captured_at: dt.datetime, refunded_at: dt.datetime) -> tuple[JournalEntry, JournalEntry]:
    """A charge the provider captured for a payment billing had failed, and
    its refund: both moved money at the provider and both are on its
    statement, so the ledger posts both (the capture as any other, the refund
    out of it), the day's reconciliation matches each, and the fee nets to
    nothing in every account."""
    return (capture_entry(payment_id, amount_fen, provider, captured_at),
            refund_entry(payment_id, refund_id, amount_fen, provider, refunded_at))


@dataclass(frozen=True)
class AccountBalance:
    account: str
    debit_fen: int
    credit_fen: int

    @property
    def balance_fen(self) -> int:
        """Positive on the account's normal side."""
        if normal_side(self.account) is Side.DEBIT:
            return self.debit_fen - self.credit_fen
        return self.credit_fen - self.debit_fen


@dataclass(frozen=True)
class TrialBalance:
    balances: tuple[AccountBalance, ...]

    @property
    def total_debit_fen(self) -> int:
        return sum(b.debit_fen for b in self.balances)

    @property
    def total_credit_fen(self) -> int:
        return sum(b.credit_fen for b in self.balances)

    @property
    def balanced(self) -> bool:
        return self.total_debit_fen == self.total_credit_fen


def trial_balance(accounts: Iterable[str], totals: Iterable[tuple[str, int, int]]) -> TrialBalance:
    """Every account of the chart with its debits and credits (zero when unused)."""
    sums: dict[str, list[int]] = {account: [0, 0] for account in accounts}
    for account, debit, credit in totals:
        pair = sums.setdefault(account, [0, 0])
        pair[0] += int(debit)
        pair[1] += int(credit)
    return TrialBalance(tuple(AccountBalance(a, d, c) for a, (d, c) in sorted(sums.items())))


def trial_balance_of(entries: Iterable[JournalEntry]) -> TrialBalance:
    """The trial balance of entries in memory (the database sums the posted ones)."""
    totals = [
        (line.account, line.amount_fen if line.side is Side.DEBIT else 0,
         line.amount_fen if line.side is Side.CREDIT else 0)
        for entry in entries for line in entry.lines
    ]
    return trial_balance(CHART, totals)
