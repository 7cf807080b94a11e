"""Steps of identity's tests through its gRPC api: a patient with a known
phone and password (signed up with the code sent to the phone), reset codes asked for and used (sent to a recording
notifier, at a clock the test moves), and a refusal read as (code, reason, field)."""
from __future__ import annotations

import datetime as dt
import uuid

import grpc
import pytest

from identity.domain.password_reset import CodeMessage
from tuoguan.identity.v1 import identity_pb2 as pb
from tuoguan_common.grpc_server import FIELD_KEY, REASON_KEY

PHONE = "13912345678"
PASSWORD = "Secret2026"
NEW_PASSWORD = "Renewed2027"


def sign_up_code(stub, phone: str = PHONE, codes=None) -> str:
    """Asks for a sign-up code for ``phone`` and answers it, as the phone got it:
    from ``codes(phone)`` or the notifier ``serve_identity`` gave the api."""
    stub.RequestSignUpCode(pb.RequestSignUpCodeRequest(phone=phone), timeout=10)
    return (codes or stub.notifier.last_code)(phone)


def sign_up_patient(stub, phone: str = PHONE, *, codes=None, password: str = PASSWORD, name: str = "赵雅琴",
                    key: str | None = None):
    """Signs a patient up as the portal does: a code to the phone, then the
    account with it. Answers the phone."""
    code = sign_up_code(stub, phone, codes)
    stub.SignUpPatient(pb.SignUpPatientRequest(
        phone=phone, password=password, display_name=name, code=code, idempotency_key=key or uuid.uuid4().hex),
        timeout=10)
    return phone


def request_code(stub, phone=PHONE):
    return stub.RequestPasswordReset(pb.RequestPasswordResetRequest(phone=phone), timeout=10)


def reset(stub, code, new_password=NEW_PASSWORD, phone=PHONE, key=None):
    return stub.ResetPassword(pb.ResetPasswordRequest(phone=phone, code=code, new_password=new_password,
                                                      idempotency_key=key or str(uuid.uuid4())), timeout=10)


def sign_in(stub, password, login=PHONE):
    return stub.SignIn(pb.SignInRequest(login=login, password=password), timeout=10)


def failure(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    trailing = dict(err.value.trailing_metadata() or ())
    return err.value.code(), trailing.get(REASON_KEY), trailing.get(FIELD_KEY)


class RecordingNotifier:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self.messages: list[CodeMessage] = []

    def send_code(self, phone: str, code: str, message: CodeMessage) -> None:
        self.sent.append((phone, code))
        self.messages.append(message)

    def last_code(self, phone: str = PHONE) -> str:
        return [code for to, code in self.sent if to == phone][-1]


class Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)
