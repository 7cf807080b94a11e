"""PayRegistrationFee on the api's event loop: concurrent payments share the
cashier's transactions and the provider's calls.

Each step of a payment is a group commit (tuoguan_common.group_commit): the
requests that arrive while a step's batch is being written go together in
its next one, so in a surge a payment costs a share of three transactions
and one provider call instead of five transactions of its own, and no thread
waits on the network per call.
"""
from __future__ import annotations

import asyncio
import contextvars

from tuoguan.billing.v1 import billing_pb2
from tuoguan_common import metrics
from tuoguan_common.group_commit import GroupCommit

from .cashier import PAY_LATER, Cashier, FeeRequest
from .domain.payments import Payment
from .registration_client import BookingSource


class Checkout:
    def __init__(self, cashier: Cashier, bookings: BookingSource, *, max_batch: int = 128):
        self.cashier = cashier
        self.bookings = bookings
        self.first_answers = GroupCommit(cashier.first_answers, max_batch=max_batch)
        self.openings = GroupCommit(self._open_payments, max_batch=max_batch)
        self.authorizations = GroupCommit(cashier.authorize_and_answer, max_batch=max_batch)

    def _open_payments(self, batch):
        metrics.BILLING_PAYMENTS_PER_TRANSACTION.observe(len(batch))
        return self.cashier.open_payments(batch)

    async def pay_fee(self, request: FeeRequest) -> billing_pb2.PayRegistrationFeeResponse:
        """Starts paying a held booking's fee; the answer is the PENDING payment
        with the provider's reference, and it settles when the provider answers.

        No transaction is open while registration or the provider is asked:

        1. the first answer, if this request was made before (a short read);
        2. the booking, from registration;
        3. transaction 1: the idempotency key and the PENDING payment, committed
           before any money moves, so a charge never exists without its row;
        4. the provider's authorisation, under the payment's authorisation key:
           the provider makes one charge whoever asks and however often;
        5. transaction 2: the provider's reference and the answer under the key.

        A retry of a request that stopped between 3 and 5 carries on from 4;
        the worker's ``authorize_unfinished`` does the same for one nobody retries.
        """
        answer = await self.first_answers.submit(request)
        if answer is None:
            # Registration's refusals (not found, not yours, unavailable) reach the patient as they are.
            booking = await self.bookings.get_booking_async(request.booking_id, request.bearer)
            opened = await self.openings.submit((request, booking))
            while opened is PAY_LATER:
                opened = await self.openings.submit((request, booking))
            if isinstance(opened, Payment):
                return await self.authorizations.submit((request, opened))
            answer = opened
        if answer:
            return billing_pb2.PayRegistrationFeeResponse.FromString(answer)
        # Claimed by a request that has not finished: rare, so one request at a time, in a thread.
        return await asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, self.cashier.resume_payment, request)
