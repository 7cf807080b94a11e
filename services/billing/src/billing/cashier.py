"""The cashier: takes registration fees through the provider, settles them
as the provider answers, gives them back when a booking is cancelled.

It joins the domain (what may happen), the store (what is written) and the
provider (where money moves). The api and the worker are thin shells over it.
Every change of a payment, its journal entry and its event commit together.
"""
from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import psycopg

from tuoguan.billing.v1 import billing_pb2, events_pb2
from tuoguan_common import metrics, outbox
from tuoguan_common.db import unreachable
from tuoguan_common.outbox import utcnow

from .domain import ledger, payments
from .domain.errors import BillingRuleError, PaymentInProgress
from .domain.payments import Booking, Payment, PaymentStatus, RefundAction, ResumeAction
from .exceptions import ProviderRequestConflict, ProviderUnavailable, RefundRefused, UnknownPaymentMethod
from .messages import payment_message
from .providers.base import ChargeRequest, PaymentProvider
from .store import BillingStore

log = logging.getLogger(__name__)

PAY_SCOPE = "billing.PayRegistrationFee"


@dataclass
class Settled:
    """What one run changed, counted once its transaction has committed."""

    captured: list[Payment] = field(default_factory=list)
    failed: list[Payment] = field(default_factory=list)
    unknown: list[Payment] = field(default_factory=list)
    refunded: list[Payment] = field(default_factory=list)
    # Charges made for payments billing had failed, given back: (payment, fen).
    returned: list[tuple[Payment, int]] = field(default_factory=list)

    def add(self, other: "Settled") -> "Settled":
        for name in ("captured", "failed", "unknown", "refunded", "returned"):
            getattr(self, name).extend(getattr(other, name))
        return self

    def count(self, *, reconciled: bool = False) -> "Settled":
        for payment in self.captured:
            metrics.BILLING_PAYMENTS.labels("captured").inc()
            metrics.BILLING_CAPTURED_FEN.inc(payment.amount_fen)
        if self.failed:
            metrics.BILLING_PAYMENTS.labels("failed").inc(len(self.failed))
        if self.unknown:
            metrics.BILLING_PAYMENTS.labels("unknown").inc(len(self.unknown))
        if reconciled:
            for outcome, settled in (("captured", self.captured), ("failed", self.failed)):
                if settled:
                    metrics.BILLING_RECONCILED.labels(outcome).inc(len(settled))
        for payment in self.refunded:
            metrics.BILLING_REFUNDS.inc()
            metrics.BILLING_REFUNDED_FEN.inc(payment.refunded_fen)
        for _payment, fen in self.returned:
            # Journaled as a capture and its refund: counted as both, so the
            # fen counters still add up to the ledger.
            metrics.BILLING_CAPTURED_FEN.inc(fen)
            metrics.BILLING_REFUNDS.inc()
            metrics.BILLING_REFUNDED_FEN.inc(fen)
        return self


# tuoguan_billing_payments_total's outcomes beyond a payment's statuses:
# payments.CHARGED_AFTER_FAILURE, a charge that landed on a payment billing had
# failed (its money goes back), and a refund that failed (tried again on the
# next round). Both are for an alert: neither should happen.
REFUND_FAILED = "refund_failed"


@dataclass(frozen=True)
class FeeRequest:
    """A patient's PayRegistrationFee, parsed."""

    patient_id: str
    booking_id: str  # canonical (payments.check_booking_id)
    method_token: str
    idempotency_key: str
    # Of the request as parsed, so two spellings of one booking id are one request.
    fingerprint: str
    bearer: str | None
    # The caller's trace: the payment keeps it, so its settling events continue it.
    trace_carrier: dict = field(default_factory=dict)
    # Registration's signed word on the hold (tuoguan_common.payment_tickets), if the caller passed it on.
    payment_ticket: str = ""

    @functools.cached_property
    def payment_id(self) -> str:
        # Worked out once: every step asks for it, several times per request.
        return payments.payment_id_for(self.patient_id, self.idempotency_key)

    @property
    def key(self) -> tuple[str, str]:
        return self.patient_id, self.idempotency_key


@dataclass(frozen=True)
class Authorized:
    """A payment and the provider's reference for it (None: none to store)."""

    request: FeeRequest
    payment: Payment
    reference: str | None
    # Opened by this request, not resumed after another that did not finish.
    opened_here: bool


class PayLater:
    """A batch's second request for a key or a booking: it goes in a later
    transaction, once the first has committed, and sees what the first left."""


PAY_LATER = PayLater()


def _only(outcomes: Sequence[object]):
    """A batch of one's outcome, raised if it is a refusal."""
    [outcome] = outcomes
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _first_answer(request: FeeRequest, earlier: outbox.EarlierRequest | None) -> bytes | None | Exception:
    """None for a new request; else the first answer (empty while the first
    has not finished), or the conflict when the key was used for another request."""
    if earlier is None:
        return None
    if earlier.request_hash != request.fingerprint:
        return outbox.IdempotencyConflict(request.idempotency_key)
    return earlier.response or b""


class Cashier:
    def __init__(self, store: BillingStore, provider: PaymentProvider, *,
                 clock: Callable[[], dt.datetime] = utcnow, payment_timeout: dt.timedelta = dt.timedelta(seconds=5),
                 authorize_grace: dt.timedelta = dt.timedelta(seconds=5), batch_size: int = 500,
                 late_charge_window: dt.timedelta = dt.timedelta(hours=24)):
        for outcome in ("captured", "failed"):
            metrics.BILLING_RECONCILED.labels(outcome)
        # Shown at 0 from the start, so an alert on their rate sees the first one.
        for outcome in (payments.CHARGED_AFTER_FAILURE, REFUND_FAILED):
            metrics.BILLING_PAYMENTS.labels(outcome)
        self.store = store
        self.provider = provider
        self.clock = clock
        self.payment_timeout = payment_timeout
        self.authorize_grace = authorize_grace
        self.batch_size = batch_size
        # How long after billing failed a payment without the provider's word
        # a charge may still land on it: at least the acquirer's longest
        # authorisation (find_charges_after_failure).
        self.late_charge_window = late_charge_window
        # Where find_charges_after_failure's next run carries on (failed at, payment id); None: from the start.
        self._sweep_after: tuple[dt.datetime, str] | None = None
        # Where settle_pending's next round carries on (opened at, payment id); None: from the oldest.
        self._pending_after: tuple[dt.datetime, str] | None = None
        # Where reconcile_unknown's next run carries on (opened at, payment id); None: from the oldest.
        self._unknown_after: tuple[dt.datetime, str] | None = None
        # Where issue_requested_refunds' next run carries on, per kind of refund.
        self._refunds_after: dict[str, tuple[dt.datetime, str] | None] = {}

    @property
    def database(self):
        return self.store.database

    # Paying a fee (api): the steps billing.checkout walks each request
    # through. Each takes a batch of requests and gives one outcome per
    # request, so the api's concurrent calls share transactions and the
    # provider's calls; no transaction is open while registration or the
    # provider is asked.

    def first_answers(self, batch: Sequence[FeeRequest]) -> list[bytes | None | Exception]:
        """Step 1: None for a new request; else its first answer, empty while
        the first has not finished; IdempotencyConflict for a key used for another request."""
        with self.database.transaction() as cur:
            earlier = outbox.earlier_requests(cur, PAY_SCOPE, [request.key for request in batch])
        return [_first_answer(request, earlier.get(request.key)) for request in batch]

    def open_payments(self, batch: Sequence[tuple[FeeRequest, Booking]]) -> list[object]:
        """Step 3, transaction 1: claims each request's key and commits its
        PENDING payment. Each request's outcome: its Payment; or the answer so
        far of the same request, which claimed the key meanwhile; or its
        refusal, which leaves neither key nor payment; or PAY_LATER."""
        outcomes: list[object] = [PAY_LATER] * len(batch)
        keys: set[tuple[str, str]] = set()
        bookings: set[str] = set()
        first = []
        for i, (request, booking) in enumerate(batch):
            if request.key not in keys and booking.booking_id not in bookings:
                keys.add(request.key)
                bookings.add(booking.booking_id)
                first.append(i)
        now = self.clock()
        with self.database.transaction() as cur:
            claimed = outbox.claim_keys(cur, PAY_SCOPE, [(*batch[i][0].key, batch[i][0].fingerprint) for i in first])
            taken = [i for i in first if batch[i][0].key not in claimed]
            earlier = outbox.earlier_requests(cur, PAY_SCOPE, [batch[i][0].key for i in taken])
            for i in taken:
                found = earlier.get(batch[i][0].key)
                # A key released in between (its request was refused) leaves the request for later.
                outcomes[i] = PAY_LATER if found is None else _first_answer(batch[i][0], found)
            opening = [i for i in first if batch[i][0].key in claimed]
            existing = self.store.payments_for_bookings(cur, [batch[i][1].booking_id for i in opening])
            named = self.store.get_payments(cur, [batch[i][0].payment_id for i in opening])
            for i in opening:
                request, booking = batch[i]
                try:
                    payments.check_payable(booking, request.patient_id, existing.get(booking.booking_id, ()), now)
                    payments.check_payment_id_unused(request.payment_id, named.get(request.payment_id))
                except BillingRuleError as exc:
                    outcomes[i] = exc
                    continue
                outcomes[i] = replace(payments.open_payment(request.payment_id, booking, self.provider.name, now,
                                                            method_token=request.method_token),
                                      trace_carrier=request.trace_carrier)
            opened = [i for i in opening if isinstance(outcomes[i], Payment)]
            inserted = self.store.insert_payments(cur, [outcomes[i] for i in opened])  # type: ignore[misc]
            # Read again after the insert: another attempt that committed or
            # failed in between is seen now (a failed one released the hold).
            after = self.store.payments_for_bookings(cur, [batch[i][1].booking_id for i in opened])
            withdrawn = []
            for i in opened:
                request, booking = batch[i]
                if request.payment_id not in inserted:
                    outcomes[i] = PaymentInProgress("another payment for this booking has just started")
                    continue
                try:
                    payments.check_payable(booking, request.patient_id, [
                        p for p in after.get(booking.booking_id, ()) if p.payment_id != request.payment_id], now)
                except BillingRuleError as exc:
                    outcomes[i] = exc
                    withdrawn.append(request.payment_id)
            self.store.withdraw_unauthorized(cur, withdrawn)
            outbox.forget_keys(cur, PAY_SCOPE, [batch[i][0].key for i in opening
                                                if isinstance(outcomes[i], Exception)])
        return outcomes

    def authorize_payments(self, batch: Sequence[tuple[FeeRequest, Payment]]) -> list[str | Exception]:
        """Step 4 for payments not yet authorised (just opened, or resumed by
        a retry): the provider's references. A payment the provider refuses
        before any charge (an unknown payment method) is withdrawn with its
        key: the request leaves nothing behind, and the patient may pay with
        another method."""
        answers = self.provider.authorize_many([
            ChargeRequest(payment.payment_id, payment.amount_fen, request.method_token,
                          payments.authorization_key(payment.payment_id))
            for request, payment in batch
        ])
        refused = [(request, payment) for (request, payment), answer in zip(batch, answers)
                   if isinstance(answer, UnknownPaymentMethod)]
        if refused:
            with self.database.transaction() as cur:
                withdrawn = self.store.withdraw_unauthorized(cur, [payment.payment_id for _, payment in refused])
                outbox.forget_keys(cur, PAY_SCOPE, [request.key for request, payment in refused
                                                    if payment.payment_id in withdrawn])
        return [answer if isinstance(answer, Exception) else answer.reference for answer in answers]

    def answer_payments(self, batch: Sequence[Authorized]) -> list[billing_pb2.PayRegistrationFeeResponse | Exception]:
        """Step 5, transaction 2: the provider's references, and each
        request's answer kept under its key. A retry of the same request that
        answered first gives its answer: one answer for all."""
        now = self.clock()
        with self.database.transaction() as cur:
            earlier = outbox.earlier_requests(cur, PAY_SCOPE, [a.request.key for a in batch], lock=True)
            late = self._store_references(
                cur, [(a.payment.payment_id, a.reference) for a in batch if a.reference is not None], now)
            current = self.store.get_payments(cur, [a.payment.payment_id for a in batch])
            outcomes: list[billing_pb2.PayRegistrationFeeResponse | Exception] = []
            answered: dict[tuple[str, str], billing_pb2.PayRegistrationFeeResponse] = {}
            for a in batch:
                first = earlier.get(a.request.key)
                payment = current.get(a.payment.payment_id)
                if first is not None and first.response:
                    outcomes.append(billing_pb2.PayRegistrationFeeResponse.FromString(first.response))
                elif a.request.key in answered:
                    outcomes.append(answered[a.request.key])
                elif payment is None:  # withdrawn by an attempt the provider refused
                    outcomes.append(PaymentInProgress("this request's payment was withdrawn: try again"))
                else:
                    answered[a.request.key] = billing_pb2.PayRegistrationFeeResponse(payment=payment_message(payment))
                    outcomes.append(answered[a.request.key])
            outbox.store_responses(cur, PAY_SCOPE, [(*key, response) for key, response in answered.items()])
        # Counted here, given back by the worker's refund timer: the api asks
        # the provider nothing more on a patient's call (and never inside a
        # transaction), least of all when the provider is slow.
        self._count_late_charges(late)
        pending = sum(1 for a in batch if a.opened_here and a.request.key in answered)
        if pending:
            metrics.BILLING_PAYMENTS.labels("pending").inc(pending)
        return outcomes

    def authorize_and_answer(self, batch: Sequence[tuple[FeeRequest, Payment]]
                             ) -> list[billing_pb2.PayRegistrationFeeResponse | Exception]:
        """Steps 4 and 5 for payments just opened, one after the other in the
        same thread: one hop to a thread per batch instead of two."""
        outcomes: list[billing_pb2.PayRegistrationFeeResponse | Exception | None] = [None] * len(batch)
        authorized = []
        for i, ((request, payment), reference) in enumerate(zip(batch, self.authorize_payments(batch))):
            if isinstance(reference, Exception):
                outcomes[i] = reference
            else:
                authorized.append((i, Authorized(request, payment, reference, opened_here=True)))
        if authorized:
            for (i, _), answer in zip(authorized, self.answer_payments([a for _, a in authorized])):
                outcomes[i] = answer
        return outcomes  # type: ignore[return-value]

    def resume_payment(self, request: FeeRequest) -> billing_pb2.PayRegistrationFeeResponse:
        """Steps 4 and 5 for a request whose key was claimed by one that has
        not finished: it died, or still runs. Carry on."""
        with self.database.transaction() as cur:
            payment = self.store.get_payment(cur, request.payment_id)
        if payment is None:
            raise PaymentInProgress("this request is still opening its payment")
        reference = None
        if payment.status is PaymentStatus.PENDING and payment.provider_reference is None:
            reference = self._resumed_authorization(request, payment)
        elif payments.charge_may_land(payment) and payment.provider_reference is None:
            # Failed while its first attempt was still inside the provider's
            # call (the api's client gave up on it, or the api died): the
            # charge may have landed since. Stored, it goes back (_store_references).
            reference = self._charge_made_after_all(payment)
        return _only(self.answer_payments([Authorized(request, payment, reference, opened_here=False)]))

    def _charge_made_after_all(self, payment: Payment) -> str | None:
        """The reference of a charge the provider made for a payment billing
        had failed as never authorised; None when it has none (or does not
        answer: the payment is failed whatever it says, and the worker's
        sweep, find_charges_after_failure, asks again)."""
        key = payments.authorization_key(payment.payment_id)
        try:
            return self.provider.authorizations([key]).get(key)
        except ProviderUnavailable:
            log.warning("provider not asked about a failed payment's charge; the worker will",
                        extra={"payment_id": payment.payment_id})
            return None

    def _resumed_authorization(self, request: FeeRequest, payment: Payment) -> str | None:
        """The provider's reference for a payment a retry resumes. None when
        the retry comes after the booking's hold is over and after the grace
        and the provider never saw the payment: it is failed then, as the
        worker would (no money moved). Within the grace the request that
        opened it may still be inside the provider's call: the retry is told
        the payment is in progress, as the worker leaves it alone."""
        key = payments.authorization_key(payment.payment_id)
        seen = self.provider.authorizations([key])
        now = self.clock()
        action = payments.resume_action(replace(payment, method_token=request.method_token), key in seen, now,
                                        grace=self.authorize_grace)
        if action is ResumeAction.RECORD:
            return seen[key]
        if action is ResumeAction.WAIT:
            raise PaymentInProgress("this request's first attempt may still be at the provider: try again shortly")
        if action is ResumeAction.ABANDON:
            with self.database.transaction() as cur:
                # Read again under the lock: the first attempt may have stored
                # its reference since the provider was asked. A charge it
                # stores after this commits lands on the FAILED payment and
                # goes back (_store_references).
                current = self.store.get_payment(cur, payment.payment_id, lock=True)
                unauthorised = (current is not None and current.status is PaymentStatus.PENDING
                                and current.provider_reference is None)
                settled = self._book(cur, [payments.abandon(current, now)] if unauthorised else [], now)
            settled.count()
            return None
        return _only(self.authorize_payments([(request, payment)]))

    # Charges made for payments already failed: given back.

    def _store_references(self, cur: psycopg.Cursor, references: Sequence[tuple[str, str]],
                          now: dt.datetime) -> list[str]:
        """Stores the provider's references; returns the payments, of those,
        that billing had already FAILED (an authorisation that outlived the
        grace and the hold: registration was told the payment failed, the
        patient was charged). Their refund is asked for in the same
        transaction, so the money goes back whatever happens next: the
        worker tries at once after the commit (_return_at_once), the refund
        timer until the provider has captured the charge."""
        stored = self.store.set_provider_references(cur, references, now)
        late = sorted(payment_id for payment_id, status in stored.items() if status is PaymentStatus.FAILED)
        self.store.return_charges(cur, late, payments.CHARGED_AFTER_FAILURE, now)
        return late

    @staticmethod
    def _count_late_charges(late: Sequence[str]) -> None:
        if late:
            metrics.BILLING_PAYMENTS.labels(payments.CHARGED_AFTER_FAILURE).inc(len(late))
        for payment_id in late:
            log.error("the provider charged a payment billing had already failed; its refund is asked for",
                      extra={"payment_id": payment_id})

    def _return_at_once(self, late: Sequence[str]) -> Settled:
        """The worker, after the commit of _store_references: counts the
        charges that landed on failed payments and gives each back if the
        provider has captured it already (usually not yet: the refund timer
        does it then). Returns what it gave back, counted already."""
        self._count_late_charges(late)
        returned = Settled()
        for payment_id in late:
            try:
                with self.database.transaction() as cur:
                    payment = self.store.get_payment(cur, payment_id, lock=True)
                    done = (self._return_charge(cur, payment) if payment is not None
                            and payments.charged_after_failure(payment) else Settled())
                returned.add(done.count())
            except Exception as exc:  # noqa: BLE001 - the refund is asked for already: the timer gives it back
                log.error("charge made after failure not given back at once; the refund timer will",
                          extra={"payment_id": payment_id, "error": type(exc).__name__})
        return returned

    def find_charges_after_failure(self) -> Settled:
        """Asks the provider about the payments billing failed without its
        word (payments.FAILED_UNHEARD) in the last ``late_charge_window``:
        a charge that landed on one after all, captured or on its way, is
        stored and asked back, as wherever else billing learns of it
        (_store_references), and given back at once if captured, otherwise
        by the refund timer; a declined one moved no money and is only
        stored, neither asked back nor counted. Nothing else
        would ever look at such a payment again: the api's call that made the
        charge ended in a timeout or a crash, or the provider's records were
        late for reconciliation.

        One batch per run (``batch_size``), in failure order; the next run
        carries on after it, and starts over once a batch comes back short, so
        a backlog larger than a batch is still seen in turn. Nothing is
        locked while the provider is asked; the rows are locked and read
        again before anything is written, and each payment is asked back
        once (its request, or its refund, takes it out of the sweep), so a
        second run, or another replica's, changes nothing. Returns what was
        given back, counted already."""
        now = self.clock()
        with self.database.transaction() as cur:
            batch = self.store.failed_unheard(cur, now - self.late_charge_window, self._sweep_after,
                                              self.batch_size)
        if not batch:
            self._sweep_after = None
            return Settled()
        unheard = [p for p in batch if p.provider_reference is None]
        # not_found_at_provider: the reference is known, the provider's records did not show it then.
        unseen = [p for p in batch if p.provider_reference is not None]
        keys = {p.payment_id: payments.authorization_key(p.payment_id) for p in unheard}
        seen = self.provider.authorizations(list(keys.values())) if unheard else {}
        references = [(p.payment_id, seen[keys[p.payment_id]]) for p in unheard if keys[p.payment_id] in seen]
        # A charge found under its key may have been declined: only the
        # provider's record tells whether money moved.
        looked_up = [p.provider_reference for p in unseen] + [reference for _, reference in references]
        records = {r.reference: r for r in self.provider.lookup(looked_up)} if looked_up else {}
        charged = [r for r in references if payments.charged_after_all(records.get(r[1]))]
        # Declined, or not in the provider's records yet: the reference is
        # kept and nothing is asked back. The payment stays in the sweep,
        # whose later runs look its record up again.
        uncharged = [r for r in references if r not in charged]
        recorded = [p.payment_id for p in unseen if payments.charged_after_all(records.get(p.provider_reference))]
        late: list[str] = []
        if references or recorded:
            with self.database.transaction() as cur:
                # Only a reference not stored yet is stored: a charge the api
                # or a retry stored meanwhile was counted and asked back there.
                late = self._store_references(cur, charged, now)
                self.store.set_provider_references(cur, uncharged, now)
                # Locked, then read again: the refund timer may have given
                # one back (or dropped it, declined) since the read above.
                current = self.store.lock_payments(cur, recorded)
                refunded = self.store.refunded_payments(cur, recorded)
                found = sorted(payment_id for payment_id, payment in current.items()
                               if payments.charge_may_land(payment) and payment_id not in refunded)
                self.store.return_charges(cur, found, payments.CHARGED_AFTER_FAILURE, now)
                late = sorted({*late, *found})
        # Moved on only once the batch is done: a run that failed asks about it again.
        self._sweep_after = (batch[-1].settled_at, batch[-1].payment_id) if len(batch) == self.batch_size else None
        log.info("failed payments asked about at the provider", extra={"counts": {
            "asked": len(batch), "charged_after_failure": len(late)}})
        return self._return_at_once(late)

    def _return_charge(self, cur: psycopg.Cursor, payment: Payment) -> Settled:
        """Gives back a charge made for a payment billing had failed, once
        the provider has captured it: refunded under the key any refund of the
        payment has (so it happens once, whoever asks and however often),
        journaled as the capture and the refund the provider's statement
        shows. The payment stays FAILED (registration was told so and
        released the hold) and shows what went back and when, in the same
        transaction as the refund."""
        assert payment.provider_reference is not None
        now = self.clock()
        try:
            records = self.provider.lookup([payment.provider_reference])
            record = next((r for r in records if r.reference == payment.provider_reference), None)
            action = payments.return_action(payment, record)
            if action is not payments.ReturnAction.REFUND:
                if action is payments.ReturnAction.NOTHING_MOVED:
                    self.store.forget_refund_request(cur, payment.payment_id, now)
                log.info("charge made after failure not given back now",
                         extra={"payment_id": payment.payment_id, "action": action.value})
                return Settled()
            assert record is not None and record.settled_at is not None
            receipt = self.provider.refund(payment.provider_reference, record.amount_fen,
                                           idempotency_key=f"refund:{payment.payment_id}")
        except (ProviderUnavailable, RefundRefused) as exc:
            log.error("provider did not give back a charge made after failure; will retry",
                      extra={"payment_id": payment.payment_id, "error": type(exc).__name__})
            metrics.BILLING_PAYMENTS.labels(REFUND_FAILED).inc()
            return Settled()
        refund_id = str(uuid.uuid4())
        self.store.insert_refund(cur, refund_id=refund_id, payment_id=payment.payment_id,
                                 amount_fen=receipt.amount_fen, reason=payments.CHARGED_AFTER_FAILURE,
                                 provider_reference=receipt.reference, refunded_at=receipt.refunded_at)
        self.store.post_entries(cur, ledger.returned_charge_entries(
            payment.payment_id, refund_id, receipt.amount_fen, payment.provider, record.settled_at,
            receipt.refunded_at), now)
        if not self.store.save_charge_given_back(
                cur, payments.charge_given_back(payment, receipt.amount_fen, receipt.refunded_at), now):
            raise RuntimeError("a locked failed payment did not record the charge given back")
        outbox.append(cur, events_pb2.RefundIssued(
            payment_id=payment.payment_id, booking_id=payment.booking_id, patient_id=payment.patient_id,
            amount_fen=receipt.amount_fen, refund_id=refund_id,
        ), trace_carrier=payment.trace_carrier)
        return Settled(returned=[(payment, receipt.amount_fen)])

    # Finishing what the api did not (worker timer).

    def authorize_unfinished(self) -> Settled:
        """Payments opened but not authorised after the grace (the api died,
        or lost the provider, between its two transactions): the provider's
        reference is stored if it has the charge; otherwise the payment is
        authorised now while the booking's hold runs, or failed once it is
        over (no money moved). The provider deduplicates every authorisation,
        so nothing here charges twice. Cheap when there is nothing to do: one
        query on a partial index that is empty but for crashes and outages.
        """
        now = self.clock()
        with self.database.transaction() as cur:
            batch = self.store.claim_unauthorized(cur, now - self.authorize_grace, self.batch_size)
            if not batch:
                return Settled()
            # Asked with the rows locked, so a replica cannot authorise one
            # while this one decides it was never seen.
            seen = self.provider.authorizations([payments.authorization_key(p.payment_id) for p in batch])
            actions = {p.payment_id: payments.resume_action(p, payments.authorization_key(p.payment_id) in seen, now,
                                                            grace=self.authorize_grace)
                       for p in batch}
            # Locked PENDING rows: none of them is FAILED, nothing to give back.
            self.store.set_provider_references(cur, [
                (p.payment_id, seen[payments.authorization_key(p.payment_id)]) for p in batch
                if actions[p.payment_id] is ResumeAction.RECORD], now)
            settled = self._book(cur, [payments.abandon(p, now) for p in batch
                                       if actions[p.payment_id] is ResumeAction.ABANDON], now)
        for payment in batch:
            if actions[payment.payment_id] is ResumeAction.AUTHORIZE:
                settled.failed.extend(self._authorize_unfinished(payment).failed)
        log.info("unfinished payments resumed", extra={"counts": {
            action.value: sum(1 for a in actions.values() if a is action) for action in ResumeAction}})
        return settled.count()

    def _authorize_unfinished(self, payment: Payment) -> Settled:
        assert payment.method_token is not None
        key = payments.authorization_key(payment.payment_id)
        try:
            reference = self.provider.authorize(payment.payment_id, payment.amount_fen, payment.method_token,
                                                idempotency_key=key).reference
        except UnknownPaymentMethod:
            now = self.clock()
            with self.database.transaction() as cur:
                return self._book(cur, [payments.abandon(payment, now, payments.UNKNOWN_PAYMENT_METHOD)], now)
        except (ProviderUnavailable, ProviderRequestConflict) as exc:
            log.error("provider did not authorise an unfinished payment; will retry",
                      extra={"payment_id": payment.payment_id, "error": type(exc).__name__})
            return Settled()
        with self.database.transaction() as cur:
            # The hold may have ended while the provider was asked, and the
            # api's retry or another replica failed the payment meanwhile.
            late = self._store_references(cur, [(payment.payment_id, reference)], self.clock())
        self._return_at_once(late)
        return Settled()

    # Settling with the provider (worker timers).

    def settle_pending(self) -> Settled:
        """Asks the provider about pending payments, in one batch, and books its answers."""
        return self._ask_about_pending(give_up=False).count()

    def give_up_on_unanswered(self) -> Settled:
        """Pending payments past the timeout: one last question, then UNKNOWN."""
        settled = self._ask_about_pending(give_up=True)
        if settled.unknown:
            log.warning("payments left unanswered by the provider", extra={"count": len(settled.unknown)})
        return settled.count()

    def _ask_about_pending(self, *, give_up: bool) -> Settled:
        now = self.clock()
        created_before = now - self.payment_timeout if give_up else None
        with self.database.transaction() as cur:
            # The provider is asked before any row is locked (the transaction
            # only reads meanwhile): most pending payments have no answer yet,
            # and locking each of them on every round was most of this timer's
            # writes. Replicas may ask about the same payments; the lock
            # below lets one book each answer.
            # Each round carries on after the last one, wrapping round at the
            # end: a real acquirer may leave more than a batch of payments
            # unanswered for minutes, and always asking about the oldest would
            # starve every payment behind them until they timed out. Giving up
            # needs no cursor: every payment it reads leaves PENDING.
            after = None if give_up else self._pending_after
            pending = self.store.claim_payments(cur, PaymentStatus.PENDING, self.batch_size,
                                                created_before=created_before, after=after, lock=False)
            if not give_up:
                last = pending[-1] if len(pending) == self.batch_size else None
                self._pending_after = None if last is None else (last.created_at, last.payment_id)
            if not pending:
                return Settled()
            answers = {a.reference: a for a in self.provider.poll([p.provider_reference for p in pending])}
            due = [p.payment_id for p in pending
                   if give_up or payments.settle(p, answers.get(p.provider_reference)) is not None]
            if not due:
                return Settled()
            # Locked now, and read again: a replica may have settled some meanwhile.
            batch = self.store.claim_payments(cur, PaymentStatus.PENDING, len(due), payment_ids=due)
            changed = []
            for payment in batch:
                after = payments.settle(payment, answers.get(payment.provider_reference))
                if after is None and give_up:
                    after = payments.unanswered(payment, now, self.payment_timeout)
                if after is not None:
                    changed.append(after)
            return self._book(cur, changed, now)

    def reconcile_unknown(self) -> Settled:
        """Settles UNKNOWN payments from the provider's own records.

        Each run carries on after the last one, starting again from the
        oldest at the end, as settle_pending does: an acquirer's records may
        leave more than a batch of charges pending for hours after an outage,
        and always asking about the oldest batch would leave every newer
        UNKNOWN payment unbooked (its capture missing from the ledger, its
        booking neither confirmed nor refunded) until those settled."""
        with self.database.transaction() as cur:
            batch = self.store.claim_payments(cur, PaymentStatus.UNKNOWN, self.batch_size,
                                              after=self._unknown_after)
            # Moved on before the provider is asked: a batch it fails on is asked again after a round.
            last = batch[-1] if len(batch) == self.batch_size else None
            self._unknown_after = None if last is None else (last.created_at, last.payment_id)
            settled = Settled()
            if batch:
                records = {r.reference: r for r in self.provider.lookup([p.provider_reference for p in batch])}
                now = self.clock()
                changed = []
                for payment in batch:
                    record = records.get(payment.provider_reference)
                    changed.append(payments.not_found_at_provider(payment, now) if record is None
                                   else payments.settle(payment, record))
                settled = self._book(cur, [c for c in changed if c], now)
            unknown = self.store.count_unknown(cur)
        metrics.BILLING_UNKNOWN_PAYMENTS.set(unknown)
        return settled.count(reconciled=True)

    def _book(self, cur: psycopg.Cursor, changed: list[Payment], now: dt.datetime) -> Settled:
        """Writes settled payments with their journal entries and events."""
        written = self.store.save_transitions(cur, changed, now)
        settled = Settled()
        for payment in changed:
            if payment.payment_id not in written:
                continue
            if payment.status is PaymentStatus.CAPTURED:
                settled.captured.append(payment)
            elif payment.status is PaymentStatus.FAILED:
                settled.failed.append(payment)
            elif payment.status is PaymentStatus.UNKNOWN:
                settled.unknown.append(payment)
        self.store.post_entries(cur, (
            ledger.capture_entry(p.payment_id, p.amount_fen, p.provider, p.settled_at or now)
            for p in settled.captured
        ), now)
        # A timer settles the payment long after the request: its events carry
        # the request's trace, so the booking saga reads as one trace.
        outbox.append_many(cur, [(events_pb2.PaymentCaptured(
            payment_id=p.payment_id, booking_id=p.booking_id, patient_id=p.patient_id, amount_fen=p.amount_fen,
        ), p.trace_carrier) for p in settled.captured] + [(events_pb2.PaymentFailed(
            payment_id=p.payment_id, booking_id=p.booking_id, patient_id=p.patient_id, reason=p.failure_reason,
        ), p.trace_carrier) for p in settled.failed])
        return settled

    # Refunds (worker event handlers and timer).

    def refund_for_booking(self, cur: psycopg.Cursor, *, payment_id: str, booking_id: str, reason: str) -> Settled:
        """Gives a booking's captured fee back, once, whatever the redeliveries.

        Runs in the event's transaction (its inbox row commits with the
        refund). A payment whose capture is not known yet keeps the request
        and is refunded when it is captured.
        """
        payment = self._payment_of_booking(cur, payment_id, booking_id)
        if payment is None:
            log.warning("refund asked for a payment billing does not have", extra={"reason": reason})
            return Settled()
        action = payments.refund_action(payment)
        if action is RefundAction.ISSUE:
            return self._refund(cur, payment, reason)
        if action is RefundAction.AWAIT_CAPTURE:
            self.store.request_refund(cur, payment.payment_id, reason, self.clock())
        log.info("refund not issued now", extra={"payment_id": payment.payment_id, "action": action.value})
        return Settled()

    def issue_requested_refunds(self) -> Settled:
        """Refunds asked for before their capture was known, or deferred
        because the provider could not refund them then; then the charges
        made for payments billing had failed, once the provider has captured
        them. One transaction each, so one the provider still refuses does
        not hold back the others."""
        # A timer runs outside any request: its RefundIssued carries the
        # paying request's trace, as the payment's other settling events do.
        settled = self._one_at_a_time(
            "requested", self.store.claim_refunds_requested,
            lambda cur, payment: self._refund(cur, payment, payment.refund_requested_reason or "requested",
                                              trace_carrier=payment.trace_carrier))
        settled.add(self._one_at_a_time(
            "charged_after_failure",
            functools.partial(self.store.claim_charges_to_return, reason=payments.CHARGED_AFTER_FAILURE),
            self._return_charge))
        return settled.count()

    def _one_at_a_time(self, kind: str, claim: Callable[..., list[Payment]],
                       refund: Callable[[psycopg.Cursor, Payment], Settled]) -> Settled:
        """Claims and refunds payments one per transaction, at most a batch
        per run, each run carrying on after the last (``kind`` names its place).

        A refund that fails for a reason of its own (the provider saw its
        key with another refund, a bug) is rolled back, logged, counted and
        passed: raised, it would end the run, and the next run would claim
        the same payment first again, so one bad refund would hold back
        every later one for good. It is tried again when the runs come round
        to it. Starting each run from the oldest, a batch of refunds the
        provider refuses for good (made by hand at the acquirer's console)
        would hold back every newer one the same way.
        """
        settled = Settled()
        after = self._refunds_after.get(kind)
        for _ in range(self.batch_size):
            payment = None
            try:
                with self.database.transaction() as cur:
                    claimed = claim(cur, 1, after=after)
                    if not claimed:
                        after = None
                        break
                    payment = claimed[0]
                    after = (payment.created_at, payment.payment_id)
                    done = refund(cur, payment)
            except Exception as exc:  # noqa: BLE001 - see above: passed, not allowed to block the rest
                if unreachable(exc):
                    raise  # the database is gone: every refund would fail alike; the timer runs again
                if payment is None:
                    raise  # the claim itself failed: nothing to skip, it would fail again at once
                # No personal data: the payment's id and the error's type, not its text.
                log.error("refund failed; the other refunds go on",
                          extra={"payment_id": payment.payment_id, "error": type(exc).__name__})
                metrics.BILLING_PAYMENTS.labels(REFUND_FAILED).inc()
                continue
            settled.add(done)
        self._refunds_after[kind] = after
        return settled

    def _payment_of_booking(self, cur: psycopg.Cursor, payment_id: str, booking_id: str) -> Payment | None:
        if booking_id:
            # Canonical, as payments store it (check_booking_id): the event's check takes any spelling uuid
            # reads, and one compared as sent named "another booking" and dropped the refund.
            booking_id = payments.canonical_booking_id(booking_id) or booking_id
        if payment_id:
            # Canonical, as the database reads it: an event's id is text from another service. One that
            # is not an id names no payment; the booking's live one is no stand-in for it.
            canonical = payments.canonical_payment_id(payment_id)
            if canonical is None:
                raise ValueError("payment_id is not an id")
            payment_id = canonical
            payment = self.store.get_payment(cur, payment_id, lock=True)
            if payment is not None and booking_id and payment.booking_id != booking_id:
                log.warning("refund event names another booking's payment", extra={"payment_id": payment_id})
                return None
            return payment
        return self.store.live_payment_for_booking(cur, booking_id, lock=True) if booking_id else None

    def _refund(self, cur: psycopg.Cursor, payment: Payment, reason: str, *,
                trace_carrier: dict | None = None) -> Settled:
        """``trace_carrier``: the trace RefundIssued continues (None: the
        current one, the event's that asked for the refund)."""
        refunded = payments.refund(payment)
        try:
            # One refund per payment: the key makes a retry after a crash find
            # the refund the provider already made.
            receipt = self.provider.refund(payment.provider_reference, payment.amount_fen,
                                           idempotency_key=f"refund:{payment.payment_id}")
        except Exception as exc:  # noqa: BLE001 - whatever the provider said, the request must outlive it
            # Kept, not lost: issue_requested_refunds tries again later. Raised
            # on an event's path, it would dead-letter the event and roll the
            # request back with it, and nothing would ever try again. Only the
            # provider was asked here: billing's transaction is intact.
            log.error("provider did not refund; will retry", extra={"payment_id": payment.payment_id,
                                                                     "error": type(exc).__name__})
            metrics.BILLING_PAYMENTS.labels(REFUND_FAILED).inc()
            self.store.request_refund(cur, payment.payment_id, reason, self.clock())
            return Settled()
        now = self.clock()
        refund_id = str(uuid.uuid4())
        self.store.insert_refund(cur, refund_id=refund_id, payment_id=payment.payment_id,
                                 amount_fen=receipt.amount_fen, reason=reason,
                                 provider_reference=receipt.reference, refunded_at=receipt.refunded_at)
        if not self.store.save_transitions(cur, [refunded], now):
            raise RuntimeError("a locked captured payment did not move to refunded")
        self.store.post_entries(cur, [ledger.refund_entry(payment.payment_id, refund_id, receipt.amount_fen,
                                                          payment.provider, receipt.refunded_at)], now)
        outbox.append(cur, events_pb2.RefundIssued(
            payment_id=payment.payment_id, booking_id=payment.booking_id, patient_id=payment.patient_id,
            amount_fen=receipt.amount_fen, refund_id=refund_id,
        ), trace_carrier=trace_carrier)
        return Settled(refunded=[refunded])
