"""PayRegistrationFee on the api's event loop: concurrent payments share the
cashier's transactions and the provider's calls.

A payment takes two group commits (tuoguan_common.group_commit): the read of
earlier answers, then, once registration has answered, its two transactions
and the provider's call. With the hold's payment ticket registration is not
asked and the read is skipped (transaction 1 finds a repeat's answer). The
requests that arrive while a batch is being written go together in the next
one, so in a surge a payment costs a share of two or three transactions and
one provider call instead of five transactions of its own, and no thread
waits on the network per call.
"""
from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

from tuoguan.billing.v1 import billing_pb2
from tuoguan_common import metrics
from tuoguan_common.db import unreachable
from tuoguan_common.group_commit import GroupCommit, outcomes_of
from tuoguan_common.payment_tickets import PaymentTickets

from .cashier import PAY_LATER, Cashier, FeeRequest
from .domain import payments
from .domain.errors import BadInput
from .domain.payments import Booking, Payment
from .exceptions import ProviderUnavailable
from .registration_client import BookingSource


def _outage(exc: BaseException) -> bool:
    """The provider or the database is down: every payment of the batch fails
    now, rather than each after its own wait. The payments opened stay
    PENDING; a retry, or the worker, authorises them later."""
    return isinstance(exc, ProviderUnavailable) or unreachable(exc)


class Checkout:
    def __init__(self, cashier: Cashier, bookings: BookingSource, *, max_batch: int = 128,
                 tickets: PaymentTickets | None = None):
        self.cashier = cashier
        self.bookings = bookings
        self.tickets = tickets
        self.first_answers = GroupCommit(cashier.first_answers, max_batch=max_batch)
        self.payments = GroupCommit(self._pay, max_batch=max_batch, shared=_outage)

    def _pay(self, batch: Sequence[tuple[FeeRequest, Booking]]) -> list[object]:
        """Steps 3 to 5 for a batch, one after the other in one thread (one
        hop to a thread per batch, not one per step)."""
        outcomes = self.cashier.open_payments(batch)
        opened = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Payment)]
        if opened:
            metrics.BILLING_PAYMENTS_PER_TRANSACTION.observe(len(opened))
            # Committed already: when the provider's call fails for the whole
            # batch, it is asked again payment by payment (or, down, every
            # payment hears so at once); the payments are never opened again.
            paid = outcomes_of(self.cashier.authorize_and_answer, [(batch[i][0], outcomes[i]) for i in opened],
                               shared=_outage)
            for i, outcome in zip(opened, paid):
                outcomes[i] = outcome
        return outcomes

    def _ticket_booking(self, request: FeeRequest) -> Booking | None:
        """The booking as the request's payment ticket states it; None: ask registration."""
        if not request.payment_ticket or self.tickets is None:
            return None
        held = self.tickets.read(request.payment_ticket)
        if held is None:  # another key (rotated), altered, or not a ticket at all: registration will say
            return None
        stated = Booking(booking_id=held.booking_id, patient_id=held.patient_id, status="HELD",
                         fee_fen=held.fee_fen, hold_expires_at=held.hold_expires_at)
        return payments.ticket_booking(stated, request.booking_id, self.cashier.clock())

    async def pay_fee(self, request: FeeRequest) -> billing_pb2.PayRegistrationFeeResponse:
        """Starts paying a held booking's fee; the answer is the PENDING payment
        with the provider's reference, and it settles when the provider answers.

        No transaction is open while registration or the provider is asked:

        1. the first answer, if this request was made before (a short read;
           skipped with a usable ticket, as transaction 1 finds it too);
        2. the booking: from registration's payment ticket when the caller
           passed one on that verifies and whose hold still runs, otherwise
           from registration itself;
        3. transaction 1: the idempotency key and the PENDING payment, committed
           before any money moves, so a charge never exists without its row;
        4. the provider's authorisation, under the payment's authorisation key:
           the provider makes one charge whoever asks and however often;
        5. transaction 2: the provider's reference and the answer under the key.

        A retry of a request that stopped between 3 and 5 carries on from 4;
        the worker's ``authorize_unfinished`` does the same for one nobody retries.
        """
        wrong_ticket: BadInput | None = None
        try:
            booking = self._ticket_booking(request)
        except BadInput as exc:  # a repeat still gets its first answer; a new request is refused
            booking, wrong_ticket = None, exc
        # Step 1 is there so that a repeat does not ask registration; with a
        # ticket nobody is asked, and transaction 1 finds the first answer
        # under the key itself.
        answer = None if booking is not None else await self.first_answers.submit(request)
        if answer is None:
            if wrong_ticket is not None:
                raise wrong_ticket
            if booking is None:
                # Registration's refusals (not found, not yours, unavailable) reach the patient as they are.
                booking = await self.bookings.get_booking_async(request.booking_id, request.bearer)
                metrics.BILLING_BOOKINGS_LEARNED.labels("registration").inc()
            else:
                metrics.BILLING_BOOKINGS_LEARNED.labels("ticket").inc()
            paid = await self.payments.submit((request, booking))
            while paid is PAY_LATER:
                paid = await self.payments.submit((request, booking))
            if isinstance(paid, billing_pb2.PayRegistrationFeeResponse):
                return paid
            answer = paid
        if answer:
            return billing_pb2.PayRegistrationFeeResponse.FromString(answer)
        # Claimed by a request that has not finished: rare, so one request at a time, in a thread.
        return await asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, self.cashier.resume_payment, request)
