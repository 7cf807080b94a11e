"""The sandbox payment provider: an acquirer that behaves like a real one.

It keeps its own books (schema ``sandbox_provider``, as if on the provider's
side; billing's code never reads them except through this adapter) and works
in its own transactions, so a charge it has made stays made whatever happens
to billing's transaction, as with a real bank.

Test cards (payment method tokens):

* ``tok_ok``: captured after the settle delay (default 200 ms);
* ``tok_decline``: declined, reason ``card_declined``;
  ``tok_insufficient_funds``: declined, reason ``insufficient_funds``;
* ``tok_timeout``: the online status API never answers for it; the charge is
  captured in the provider's records after the late-capture delay, where only
  reconciliation (``lookup``, ``statement``) sees it.

A charge's outcome is decided when it is authorised and takes effect at its
``settles_at``: reading at a time decides what the provider shows, so the
provider needs no process of its own (the view ``sandbox_provider.charge_book``
shows the live status to a person).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import psycopg

from tuoguan_common.db import Database, pg_array
from tuoguan_common.outbox import utcnow

from ..domain.payments import ChargeState, ChargeStatus
from ..domain.reconciliation import Movement, MovementKind
from ..exceptions import ProviderRequestConflict, ProviderUnavailable, RefundRefused, UnknownPaymentMethod
from .base import Authorization, ChargeRequest, PaymentProvider, RefundReceipt


@dataclass(frozen=True)
class SandboxCard:
    outcome: ChargeState
    decline_reason: str | None = None
    answers_online: bool = True


TEST_CARDS: dict[str, SandboxCard] = {
    "tok_ok": SandboxCard(ChargeState.CAPTURED),
    "tok_decline": SandboxCard(ChargeState.DECLINED, "card_declined"),
    "tok_insufficient_funds": SandboxCard(ChargeState.DECLINED, "insufficient_funds"),
    "tok_timeout": SandboxCard(ChargeState.CAPTURED, answers_online=False),
}

_CHARGE_COLUMNS = "reference, merchant_payment_id, amount_fen, outcome, decline_reason, settles_at"


class SandboxProvider(PaymentProvider):
    name = "sandbox"

    def __init__(self, database: Database, *, settle_delay: dt.timedelta = dt.timedelta(milliseconds=200),
                 late_capture_delay: dt.timedelta = dt.timedelta(seconds=2),
                 clock: Callable[[], dt.datetime] = utcnow, owns_database: bool = False):
        self.database = database
        self.settle_delay = settle_delay
        self.late_capture_delay = late_capture_delay
        self.clock = clock
        self._owns_database = owns_database

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 4, **options) -> "SandboxProvider":
        """Its own connection pool, as a separate system would have."""
        database = Database(url, max_size=pool_size, name="sandbox-provider").open()
        return cls(database, owns_database=True, **options)

    def close(self) -> None:
        if self._owns_database:
            self.database.close()

    @contextlib.contextmanager
    def _books(self) -> Iterator[psycopg.Cursor]:
        try:
            with self.database.transaction() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            raise ProviderUnavailable("the payment provider does not answer") from exc

    def authorize(self, payment_id: str, amount_fen: int, method_token: str, idempotency_key: str) -> Authorization:
        [answer] = self.authorize_many([ChargeRequest(payment_id, amount_fen, method_token, idempotency_key)])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def authorize_many(self, charges: Sequence[ChargeRequest]) -> list[Authorization | Exception]:
        """One statement for the batch's charges; the same request again gets
        the charge made the first time."""
        answers: list[Authorization | Exception | None] = [None] * len(charges)
        now = self.clock()
        new = []
        for i, charge in enumerate(charges):
            card = TEST_CARDS.get(charge.method_token)
            if card is None:
                answers[i] = UnknownPaymentMethod()
                continue
            delay = self.settle_delay if card.answers_online else self.late_capture_delay
            new.append((f"sbx_ch_{uuid.uuid4().hex}", charge.payment_id, charge.idempotency_key, charge.amount_fen,
                        charge.method_token, card.outcome.value, card.decline_reason, card.answers_online, now,
                        now + delay))
        if not new:
            return answers  # type: ignore[return-value]
        with self._books() as cur:
            cur.execute(
                "INSERT INTO sandbox_provider.charges (reference, merchant_payment_id, idempotency_key, amount_fen, "
                "method_token, outcome, decline_reason, answers_online, created_at, settles_at) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], "
                "%s::text[], %s::boolean[], %s::timestamptz[], %s::timestamptz[]) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key, reference",
                [pg_array(column) for column in zip(*new)], prepare=False,
            )
            made = {row["idempotency_key"]: row["reference"] for row in cur.fetchall()}
            again = [charge.idempotency_key for charge in charges if charge.idempotency_key not in made]
            earlier = {}
            if again:
                # The same request again: the charge made the first time.
                cur.execute(
                    "SELECT idempotency_key, reference, merchant_payment_id, amount_fen FROM sandbox_provider.charges "
                    "WHERE idempotency_key = ANY(%s::text[])", (pg_array(again),), prepare=False,
                )
                earlier = {row["idempotency_key"]: row for row in cur.fetchall()}
        for i, charge in enumerate(charges):
            if answers[i] is not None:
                continue
            if charge.idempotency_key in made:
                answers[i] = Authorization(reference=made[charge.idempotency_key], state=ChargeState.PENDING)
                continue
            row = earlier[charge.idempotency_key]
            if row["merchant_payment_id"] != charge.payment_id or row["amount_fen"] != charge.amount_fen:
                answers[i] = ProviderRequestConflict("the provider saw this idempotency key with another charge")
            else:
                answers[i] = Authorization(reference=row["reference"], state=ChargeState.PENDING)
        return answers  # type: ignore[return-value]

    def authorizations(self, idempotency_keys: Sequence[str]) -> dict[str, str]:
        if not idempotency_keys:
            return {}
        with self._books() as cur:
            cur.execute("SELECT idempotency_key, reference FROM sandbox_provider.charges "
                        "WHERE idempotency_key = ANY(%s::text[])", (pg_array(idempotency_keys),))
            return {row["idempotency_key"]: row["reference"] for row in cur.fetchall()}

    def poll(self, references: Sequence[str]) -> list[ChargeStatus]:
        return self._charges(references, online=True)

    def lookup(self, references: Sequence[str]) -> list[ChargeStatus]:
        return self._charges(references, online=False)

    def _charges(self, references: Sequence[str], *, online: bool) -> list[ChargeStatus]:
        if not references:
            return []
        now = self.clock()
        with self._books() as cur:
            cur.execute(
                f"SELECT {_CHARGE_COLUMNS} FROM sandbox_provider.charges WHERE reference = ANY(%s::text[])"
                + (" AND answers_online" if online else ""),
                (pg_array(references),),
            )
            rows = cur.fetchall()
        return [self._status(row, now) for row in rows]

    @staticmethod
    def _status(row: dict, now: dt.datetime) -> ChargeStatus:
        settled = row["settles_at"] <= now
        return ChargeStatus(
            reference=row["reference"], payment_id=row["merchant_payment_id"], amount_fen=row["amount_fen"],
            state=ChargeState(row["outcome"]) if settled else ChargeState.PENDING,
            decline_reason=row["decline_reason"] if settled else None,
            settled_at=row["settles_at"] if settled else None,
        )

    def refund(self, charge_reference: str, amount_fen: int, idempotency_key: str) -> RefundReceipt:
        now = self.clock()
        with self._books() as cur:
            cur.execute(
                f"SELECT {_CHARGE_COLUMNS} FROM sandbox_provider.charges WHERE reference = %s FOR UPDATE",
                (charge_reference,),
            )
            row = cur.fetchone()
            if row is None:
                raise RefundRefused("the provider has no such charge")
            cur.execute(
                "SELECT reference, charge_reference, amount_fen, created_at FROM sandbox_provider.refunds "
                "WHERE idempotency_key = %s", (idempotency_key,),
            )
            done = cur.fetchone()
            if done is not None:
                if done["charge_reference"] != charge_reference or done["amount_fen"] != amount_fen:
                    raise ProviderRequestConflict("the provider saw this idempotency key with another refund")
                return RefundReceipt(done["reference"], charge_reference, amount_fen, done["created_at"])
            if self._status(row, now).state is not ChargeState.CAPTURED:
                raise RefundRefused("the provider has not captured this charge")
            cur.execute(
                "SELECT coalesce(sum(amount_fen), 0) AS refunded FROM sandbox_provider.refunds "
                "WHERE charge_reference = %s", (charge_reference,),
            )
            if cur.fetchone()["refunded"] + amount_fen > row["amount_fen"]:
                raise RefundRefused("the refund would exceed what the provider captured")
            reference = f"sbx_re_{uuid.uuid4().hex}"
            cur.execute(
                "INSERT INTO sandbox_provider.refunds (reference, charge_reference, idempotency_key, amount_fen, "
                "created_at) VALUES (%s, %s, %s, %s, %s)",
                (reference, charge_reference, idempotency_key, amount_fen, now),
            )
        return RefundReceipt(reference, charge_reference, amount_fen, now)

    def statement(self, start: dt.datetime, end: dt.datetime) -> list[Movement]:
        with self._books() as cur:
            cur.execute(
                "SELECT 'capture' AS kind, merchant_payment_id, reference, amount_fen "
                "FROM sandbox_provider.charges WHERE outcome = 'captured' "
                "AND settles_at >= %(start)s AND settles_at < %(end)s AND settles_at <= %(now)s "
                "UNION ALL "
                "SELECT 'refund', c.merchant_payment_id, c.reference, r.amount_fen "
                "FROM sandbox_provider.refunds r JOIN sandbox_provider.charges c ON c.reference = r.charge_reference "
                "WHERE r.created_at >= %(start)s AND r.created_at < %(end)s",
                {"start": start, "end": end, "now": self.clock()},
            )
            rows = cur.fetchall()
        return [Movement(MovementKind(r["kind"]), r["merchant_payment_id"], r["reference"], r["amount_fen"])
                for r in rows]
