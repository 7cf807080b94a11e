"""The daily reconciliation: the ledger's money movements against the
provider's records of the same Asia/Shanghai business day.

Both sides date a movement by when the money moved at the provider (the
ledger's entries carry the provider's capture and refund times), so a payment
settled a second before midnight falls on the same day on both sides, and a
line that does not match is a real difference: a capture the ledger has not
posted yet (an UNKNOWN payment), a charge billing never recorded, or an amount
that differs.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Iterable
from zoneinfo import ZoneInfo

from .errors import BadInput
from .ledger import EntryKind
from .payments import CHARGED_AFTER_FAILURE

SHANGHAI = ZoneInfo("Asia/Shanghai")


class MovementKind(enum.StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"


# The journal entries that move money at the provider, and how.
MOVEMENT_OF_ENTRY = {
    EntryKind.REGISTRATION_FEE_CAPTURE: MovementKind.CAPTURE,
    EntryKind.REGISTRATION_FEE_REFUND: MovementKind.REFUND,
}


class Outcome(enum.StrEnum):
    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_PROVIDER = "missing_at_provider"
    AMOUNT_MISMATCH = "amount_mismatch"


@dataclass(frozen=True)
class Movement:
    """Money captured for, or refunded on, one payment: one side's view."""

    kind: MovementKind
    payment_id: str
    provider_reference: str
    amount_fen: int
    # Why the money moved, as the ledger knows it (movement_reason); the provider's side has none.
    reason: str = ""


def movement_reason(kind: MovementKind, refund_reason: str | None) -> str:
    """``refund_reason``: the reason of the payment's refund, if it has one.
    A refund moves for its reason (booking_cancelled, payment_rejected,
    charged_after_failure); a capture is marked only when it is a charge
    made after the payment failed, so neither of its two movements reads
    as an ordinary fee and its cancellation."""
    if kind is MovementKind.REFUND:
        return refund_reason or ""
    return CHARGED_AFTER_FAILURE if refund_reason == CHARGED_AFTER_FAILURE else ""


@dataclass(frozen=True)
class ReconciliationLine:
    kind: MovementKind
    payment_id: str
    provider_reference: str
    ledger_fen: int
    provider_fen: int
    outcome: Outcome
    reason: str = ""


@dataclass(frozen=True)
class ReconciliationReport:
    business_date: dt.date
    captured_fen: int
    refunded_fen: int
    provider_captured_fen: int
    provider_refunded_fen: int
    lines: tuple[ReconciliationLine, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for line in self.lines if line.outcome is outcome)

    @property
    def matched(self) -> int:
        return self.count(Outcome.MATCHED)

    @property
    def mismatched(self) -> int:
        return len(self.lines) - self.matched


# The API promises YYYY-MM-DD only: fromisoformat also reads 20261126 and ISO
# week dates (2026-W48-4, ten characters too). ASCII digits only: \d would
# take any script's.
_BUSINESS_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The days a report can be asked for. Far wider than the ledger's life; a date
# outside is a typo (year 0206, 9026), and the ends of datetime's range
# (0001-01-01, 9999-12-31) have no UTC instants for their Shanghai day.
EARLIEST_BUSINESS_DATE = dt.date(2000, 1, 1)
LATEST_BUSINESS_DATE = dt.date(2999, 12, 31)


def parse_business_date(text: str) -> dt.date:
    text = (text or "").strip()
    if not text:
        raise BadInput("business_date", "is required (YYYY-MM-DD)")
    try:
        if not _BUSINESS_DATE.fullmatch(text):
            raise ValueError(text)
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput("business_date", "is not a date (YYYY-MM-DD)") from None
    if not EARLIEST_BUSINESS_DATE <= day <= LATEST_BUSINESS_DATE:
        raise BadInput("business_date", f"is out of range ({EARLIEST_BUSINESS_DATE.isoformat()} "
                                        f"to {LATEST_BUSINESS_DATE.isoformat()})")
    return day


def business_day(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants [start, end) of an Asia/Shanghai calendar day."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def business_date_of(instant: dt.datetime) -> dt.date:
    return instant.astimezone(SHANGHAI).date()


_ORDER = {Outcome.MISSING_IN_LEDGER: 0, Outcome.MISSING_AT_PROVIDER: 1, Outcome.AMOUNT_MISMATCH: 2, Outcome.MATCHED: 3}


def reconcile(business_date: dt.date, ledger: Iterable[Movement], provider: Iterable[Movement]) -> ReconciliationReport:
    """Matches movements by (kind, payment); differences first in the lines."""
    ours = _by_key(ledger)
    theirs = _by_key(provider)
    lines = []
    for key in ours.keys() | theirs.keys():
        kind, payment_id = key
        mine, other = ours.get(key), theirs.get(key)
        if mine is None:
            outcome = Outcome.MISSING_IN_LEDGER
        elif other is None:
            outcome = Outcome.MISSING_AT_PROVIDER
        elif mine[0] != other[0]:
            outcome = Outcome.AMOUNT_MISMATCH
        else:
            outcome = Outcome.MATCHED
        reference = (other or mine)[1]
        lines.append(ReconciliationLine(kind, payment_id, reference, mine[0] if mine else 0,
                                        other[0] if other else 0, outcome, mine[2] if mine else ""))
    lines.sort(key=lambda line: (_ORDER[line.outcome], line.kind, line.payment_id))

    def total(side: dict, kind: MovementKind) -> int:
        return sum(amount for (k, _), (amount, _, _) in side.items() if k is kind)

    return ReconciliationReport(
        business_date=business_date,
        captured_fen=total(ours, MovementKind.CAPTURE),
        refunded_fen=total(ours, MovementKind.REFUND),
        provider_captured_fen=total(theirs, MovementKind.CAPTURE),
        provider_refunded_fen=total(theirs, MovementKind.REFUND),
        lines=tuple(lines),
    )


def _by_key(movements: Iterable[Movement]) -> dict[tuple[MovementKind, str], tuple[int, str, str]]:
    # Amounts of the same kind on the same payment add up: a side that
    # recorded one movement twice shows as an amount mismatch, not a match.
    out: dict[tuple[MovementKind, str], tuple[int, str, str]] = {}
    for m in movements:
        key = (MovementKind(m.kind), m.payment_id)
        amount, reference, reason = out.get(key, (0, m.provider_reference, m.reason))
        out[key] = (amount + m.amount_fen, reference or m.provider_reference, reason or m.reason)
    return out
