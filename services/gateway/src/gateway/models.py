"""The HTTP shapes. Replies mirror the protos (derived from their
descriptors); request bodies are written out, because the path and the
Idempotency-Key header carry what the proto requests hold besides."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tuoguan.billing.v1 import billing_pb2
from tuoguan.identity.v1 import identity_pb2
from tuoguan.registration.v1 import registration_pb2

from .convert import enum_model, message_model

# Replies.
Account = message_model(identity_pb2.Account)
SignInReply = message_model(identity_pb2.SignInResponse)
PasswordResetReply = message_model(identity_pb2.RequestPasswordResetResponse)
DepartmentList = message_model(registration_pb2.ListDepartmentsResponse)
DoctorList = message_model(registration_pb2.ListDoctorsResponse)
SlotList = message_model(registration_pb2.ListSlotsResponse)
Booking = message_model(registration_pb2.Booking)
BookingList = message_model(registration_pb2.ListMyBookingsResponse)
SessionTemplate = message_model(registration_pb2.SessionTemplate)
SessionTemplateList = message_model(registration_pb2.ListSessionTemplatesResponse)
PublishScheduleRequest = message_model(registration_pb2.PublishScheduleRequest)
PublishScheduleReply = message_model(registration_pb2.PublishScheduleResponse)
SessionList = message_model(registration_pb2.ListSessionsResponse)
SessionBookingList = message_model(registration_pb2.ListSessionBookingsResponse)
SuspendSessionReply = message_model(registration_pb2.SuspendSessionResponse)
Payment = message_model(billing_pb2.Payment)
PaymentList = message_model(billing_pb2.ListPaymentsResponse)
Ledger = message_model(billing_pb2.GetLedgerBalancesResponse)
ReconciliationReport = message_model(billing_pb2.GetReconciliationReportResponse)
Role = enum_model(identity_pb2.Role.DESCRIPTOR)


# Requests.
class SignUp(BaseModel):
    phone: str = Field(description="Mainland mobile number, 11 digits", examples=["13800000003"])
    password: str = Field(description="At least 8 characters, letters and digits", examples=["Patient1234"])
    display_name: str = Field(description="1-40 characters", examples=["周文静"])


class SignIn(BaseModel):
    login: str = Field(description="Phone number (patients) or staff id", examples=["13800000001"])
    password: str = Field(examples=["Patient1234"])


class PasswordReset(BaseModel):
    phone: str = Field(description="The patient's mobile number, their login", examples=["13800000001"])


class PasswordResetConfirm(BaseModel):
    phone: str = Field(examples=["13800000001"])
    code: str = Field(description="The 6 digits sent to the phone", examples=["123456"])
    new_password: str = Field(description="At least 8 characters, letters and digits", examples=["Patient5678"])


class StaffAccount(BaseModel):
    login: str = Field(description="Staff id: a letter, then letters, digits, '.', '-', '_'", examples=["sun.li"])
    password: str
    display_name: str = Field(examples=["孙丽"])
    roles: list[Role] = Field(examples=[["registration_office"]])


class Hold(BaseModel):
    slot_id: str


class Pay(BaseModel):
    payment_method_token: str = Field(
        description="The sandbox provider's test token: tok_ok, tok_decline or tok_timeout", examples=["tok_ok"],
    )


class Suspend(BaseModel):
    reason: str = Field(examples=["医生临时停诊 / doctor unavailable"])


# Errors, in the one shape every refusal has (see errors.py).
class ErrorDetail(BaseModel):
    reason: str = Field(description="Stable machine code, e.g. slot_full, phone_taken, bad_credentials")
    field: str | None = Field(None, description="The request field at fault, when one is")
    message: str


class ErrorReply(BaseModel):
    error: ErrorDetail
    detail: list[dict[str, Any]] | None = Field(
        None, description="Malformed requests only: every problem found (loc, msg, type), without the values sent",
    )


ERROR_RESPONSES = {
    status: {"model": ErrorReply, "description": description} for status, description in {
        401: "No or no valid access token", 403: "Not allowed for this account", 404: "Not found",
        409: "Conflicts with the current state", 422: "A field is invalid", 429: "Too many attempts",
        503: "A service is unavailable",
    }.items()
}
