"""Billing's test fixtures: a migrated database on the real PostgreSQL, the
api in-process on a free port, and a registration-like gRPC server.

Registration is a peer service, so a small in-process double of its
GetBooking stands in for it here; it checks the forwarded token like the real
one. PostgreSQL and RabbitMQ are always the real ones.
"""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import grpc
import pytest

from billing import api
from billing.cashier import Cashier
from billing.providers.base import MeteredProvider, PaymentProvider
from billing.providers.sandbox import SandboxProvider
from billing.registration_client import RegistrationClient
from billing.store import BillingStore
from billing.worker import BillingWorker
from tuoguan.billing.v1 import billing_pb2 as pb
from tuoguan.billing.v1 import billing_pb2_grpc
from tuoguan.registration.v1 import registration_pb2, registration_pb2_grpc
from tuoguan_common import auth
from tuoguan_common.auth import current_principal
from tuoguan_common.errors import NotFound
from tuoguan_common.grpc_server import REASON_KEY, build_server
from tuoguan_common.outbox import utcnow

SETTLE_DELAY = dt.timedelta(milliseconds=200)
LATE_CAPTURE = dt.timedelta(seconds=3)
PAYMENT_TIMEOUT = dt.timedelta(seconds=1)
AUTHORIZE_GRACE = dt.timedelta(seconds=2)
HOLD = dt.timedelta(minutes=15)


class ProbedProvider(MeteredProvider):
    """The sandbox, with hooks a test sets around ``authorize`` (one charge
    or a batch's each): to look at
    the world just before the provider is asked, or to make the call fail."""

    def __init__(self, inner: PaymentProvider):
        super().__init__(inner)
        self.before_authorize: Callable[[str], None] | None = None
        self.after_authorize: Callable[[str], None] | None = None

    def authorize_many(self, charges):
        for charge in charges:
            if self.before_authorize is not None:
                self.before_authorize(charge.payment_id)
        answers = super().authorize_many(charges)
        for charge in charges:
            if self.after_authorize is not None:
                self.after_authorize(charge.payment_id)
        return answers

    def authorize(self, payment_id, amount_fen, method_token, idempotency_key):
        if self.before_authorize is not None:
            self.before_authorize(payment_id)
        authorization = super().authorize(payment_id, amount_fen, method_token, idempotency_key)
        if self.after_authorize is not None:
            self.after_authorize(payment_id)
        return authorization


class RegistrationDouble(registration_pb2_grpc.RegistrationServiceServicer):
    """GetBooking over a dict of bookings, with registration's ownership rule."""

    def __init__(self):
        self.bookings: dict[str, registration_pb2.Booking] = {}
        self.address = ""
        # Called with the booking id each time GetBooking is asked, before it answers.
        self.on_get_booking: Callable[[str], None] | None = None
        self.asked: list[str] = []

    def add(self, patient_id: str, *, fee_fen: int = 5000, status: int | None = None,
            hold: dt.timedelta = HOLD) -> str:
        booking_id = str(uuid.uuid4())
        if status is None:
            # As registration does: a free booking is confirmed in the hold's own transaction.
            status = registration_pb2.BOOKING_STATUS_CONFIRMED if fee_fen == 0 else registration_pb2.BOOKING_STATUS_HELD
        self.bookings[booking_id] = registration_pb2.Booking(
            booking_id=booking_id, patient_id=patient_id, status=status, fee_fen=fee_fen,
            hold_expires_at=(utcnow() + hold).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        return booking_id

    def set_status(self, booking_id: str, status: int) -> None:
        self.bookings[booking_id].status = status

    def GetBooking(self, request, context):
        self.asked.append(request.booking_id)
        if self.on_get_booking is not None:
            self.on_get_booking(request.booking_id)
        caller = current_principal()
        booking = self.bookings.get(request.booking_id)
        if booking is None:
            raise NotFound("no such booking", reason="booking_not_found")
        caller.require_owner_or(booking.patient_id, auth.REGISTRATION_OFFICE, auth.ADMIN, auth.SERVICE)
        return registration_pb2.GetBookingResponse(booking=booking)


def _serve(service: str, register, verifier) -> tuple[grpc.Server, str]:
    server, port = build_server(service=service, register=register, verifier=verifier, port=0,
                                         host="127.0.0.1", workers=8)
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def registration(verifier):
    double = RegistrationDouble()

    def register(server):
        registration_pb2_grpc.add_RegistrationServiceServicer_to_server(double, server)
        return [registration_pb2.DESCRIPTOR.services_by_name["RegistrationService"].full_name]

    server, double.address = _serve("registration", register, verifier)
    yield double
    server.stop(0)


@pytest.fixture
def billing_db(make_database):
    return make_database("billing", api.MIGRATIONS_DIR)


@pytest.fixture
def sandbox(billing_db):
    return SandboxProvider(billing_db, settle_delay=SETTLE_DELAY, late_capture_delay=LATE_CAPTURE)


@dataclass
class Billing:
    stub: billing_pb2_grpc.BillingServiceStub
    db: object
    issuer: auth.TokenIssuer
    registration: RegistrationDouble
    provider: ProbedProvider

    # How far a test moves the worker's clock instead of sleeping.
    SETTLED = dt.timedelta(seconds=1)  # past the sandbox's settle delay
    TIMED_OUT = dt.timedelta(seconds=1.5)  # past the payment timeout, before the late capture
    LATE_CAPTURED = dt.timedelta(seconds=4)  # past the sandbox's late capture of tok_timeout
    UNFINISHED = dt.timedelta(seconds=3)  # past the grace the worker gives an unauthorised payment

    def held_booking(self, fee_fen: int = 5000, hold: dt.timedelta = HOLD) -> tuple[str, str]:
        """A new patient and their HELD booking at registration."""
        patient_id = str(uuid.uuid4())
        return patient_id, self.registration.add(patient_id, fee_fen=fee_fen, hold=hold)

    def pay(self, patient_id: str, booking_id: str, token: str = "tok_ok",
            key: str | None = None, ticket: str = "") -> pb.PayRegistrationFeeResponse:
        return self.stub.PayRegistrationFee(
            pb.PayRegistrationFeeRequest(booking_id=booking_id, payment_method_token=token,
                                         idempotency_key=key or str(uuid.uuid4()), payment_ticket=ticket),
            metadata=self.token(patient_id),
        )

    def pay_at_once(self, patient_id: str, booking_id: str, keys: list[str | None]
                    ) -> list[pb.PayRegistrationFeeResponse | str]:
        """One request per key, all at the same time: each one's answer, or its refusal's reason."""
        outcomes: list[pb.PayRegistrationFeeResponse | str] = []

        def attempt(key: str | None) -> None:
            try:
                outcomes.append(self.pay(patient_id, booking_id, key=key))
            except grpc.RpcError as exc:
                outcomes.append(self.reason_of(exc) or exc.code().name)

        threads = [threading.Thread(target=attempt, args=(key,)) for key in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes

    def new_payment(self, token: str = "tok_ok", fee_fen: int = 5000) -> pb.Payment:
        """A new patient pays a new booking."""
        return self.pay(*self.held_booking(fee_fen), token=token).payment

    def unfinished_payment(self, *, hold: dt.timedelta = HOLD, charged: bool = False) -> tuple[str, str]:
        """(payment id, booking id) of a payment whose api died before storing
        the provider's reference: after the provider charged it when
        ``charged``, before asking it otherwise. Its booking's hold ends ``hold`` from now
        (already over: it ran out after the payment opened, while the api was dead)."""
        patient_id, booking_id = self.held_booking(hold=max(hold, HOLD))

        def dies(_payment_id):
            raise RuntimeError("the api died here")

        if charged:
            self.provider.after_authorize = dies
        else:
            self.provider.before_authorize = dies
        try:
            with pytest.raises(grpc.RpcError):
                self.pay(patient_id, booking_id)
        finally:
            self.provider.before_authorize = self.provider.after_authorize = None
        [row] = self.rows("SELECT payment_id::text FROM payments WHERE booking_id = %s", booking_id)
        if hold < HOLD:
            # Billing refuses to open a payment on a hold that is over: the hold is cut short once it is open.
            ends = utcnow() + hold
            self.registration.bookings[booking_id].hold_expires_at = (
                ends.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
            self.rows("UPDATE payments SET hold_expires_at = %s WHERE booking_id = %s RETURNING 1", ends, booking_id)
        return row["payment_id"], booking_id

    def token(self, subject: str | None = None, *roles: str) -> tuple[tuple[str, str], ...]:
        return auth.bearer_metadata(self.issuer.issue(subject or str(uuid.uuid4()), list(roles or [auth.PATIENT])))

    def cashier(self, after: dt.timedelta = dt.timedelta(0), batch_size: int = 500) -> Cashier:
        """The worker's cashier, looking at the world ``after`` from now: the
        provider's records and the timeouts read that clock."""
        clock: Callable[[], dt.datetime] = lambda: utcnow() + after  # noqa: E731
        provider = SandboxProvider(self.db, settle_delay=SETTLE_DELAY, late_capture_delay=LATE_CAPTURE, clock=clock)
        return Cashier(BillingStore(self.db), provider, clock=clock, payment_timeout=PAYMENT_TIMEOUT,
                       authorize_grace=AUTHORIZE_GRACE, batch_size=batch_size)

    def worker(self, after: dt.timedelta = dt.timedelta(0)) -> BillingWorker:
        """The worker's nameko service, its cashier (``cashier(after)``) given
        by hand instead of by the container."""
        worker = BillingWorker()
        worker.cashier = self.cashier(after)
        return worker

    @staticmethod
    def reason_of(error: grpc.RpcError) -> str | None:
        return dict(error.trailing_metadata() or ()).get(REASON_KEY)

    def rows(self, sql: str, *params) -> list[dict]:
        with self.db.transaction() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def events(self, event_type: str) -> list[dict]:
        return [r["payload"] for r in self.rows(
            "SELECT payload FROM outbox WHERE event_type = %s ORDER BY id", event_type)]


@pytest.fixture
def billing(request, billing_db, registration, sandbox, verifier, issuer):
    """Billing's api; parametrized indirectly with a PaymentTickets, it checks payment tickets."""
    bookings = RegistrationClient(registration.address)
    provider = ProbedProvider(sandbox)
    tickets = getattr(request, "param", None)
    server, address = _serve(
        "billing", lambda srv: api.register(srv, None, billing_db, bookings=bookings, provider=provider,
                                            tickets=tickets), verifier,
    )
    channel = grpc.insecure_channel(address)
    yield Billing(billing_pb2_grpc.BillingServiceStub(channel), billing_db, issuer, registration, provider)
    channel.close()
    bookings.close()  # on the server's loop, while it runs
    server.stop(0)
