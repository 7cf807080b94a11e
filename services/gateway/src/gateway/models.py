"""The HTTP shapes. Replies mirror the protos (derived from their
descriptors); request bodies are written out, because the path and the
Idempotency-Key header carry what the proto requests hold besides."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from tuoguan.billing.v1 import billing_pb2
from tuoguan.identity.v1 import identity_pb2
from tuoguan.registration.v1 import registration_pb2
from tuoguan.ticketing.v1 import ticketing_pb2

from .convert import Int32, Text, enum_model, message_model

# Replies.
Account = message_model(identity_pb2.Account)
StaffList = message_model(identity_pb2.ListStaffResponse)
SignInReply = message_model(identity_pb2.SignInResponse)
PasswordResetReply = message_model(identity_pb2.RequestPasswordResetResponse)
PasswordResetConfirmReply = message_model(identity_pb2.ResetPasswordResponse)
SignUpCodeReply = message_model(identity_pb2.RequestSignUpCodeResponse)
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
IssuedDeviceToken = message_model(identity_pb2.IssueDeviceTokenResponse)
DeviceToken = message_model(identity_pb2.DeviceToken)
DeviceTokenList = message_model(identity_pb2.ListDeviceTokensResponse)
Subsystem = message_model(ticketing_pb2.Subsystem)
SubsystemList = message_model(ticketing_pb2.ListSubsystemsResponse)
CalendarDayList = message_model(ticketing_pb2.ListCalendarDaysResponse)
CalendarDay = message_model(ticketing_pb2.CalendarDay)
Ticket = message_model(ticketing_pb2.Ticket)
TicketList = message_model(ticketing_pb2.ListTicketsResponse)
TicketDetail = message_model(ticketing_pb2.GetTicketResponse)
Comment = message_model(ticketing_pb2.Comment)
Worklog = message_model(ticketing_pb2.Worklog)
WorklogList = message_model(ticketing_pb2.ListWorklogsResponse)
AlertsReceived = message_model(ticketing_pb2.ReceiveAlertsResponse)
TicketKind = enum_model(ticketing_pb2.TicketKind.DESCRIPTOR)
Level = enum_model(ticketing_pb2.Level.DESCRIPTOR)


# A new password, as identity holds it (services/identity/README.md, "Passwords").
NEW_PASSWORD = ("At least 8 characters, letters and digits; not a commonly used password (422 password_common, "
                "whatever its case) and not holding the phone number or its last 8 digits (password_contains_phone)")


# Requests. Their strings are Text and their integers Int32 (convert.py): a value
# a proto field cannot hold is refused as 422 here, not by the protobuf runtime.
class SignUpCode(BaseModel):
    phone: Text = Field(description="Mainland mobile number, 11 digits: the account's login", examples=["13800000003"])


class SignUp(BaseModel):
    phone: Text = Field(description="Mainland mobile number, 11 digits", examples=["13800000003"])
    code: Text = Field(description="The 6 digits POST /api/v1/auth/signup/code sent to the phone", examples=["123456"])
    password: Text = Field(description=NEW_PASSWORD, examples=["Patient1234"])
    display_name: Text = Field(description="1-40 characters", examples=["周文静"])


class SignIn(BaseModel):
    login: Text = Field(description="Phone number (patients) or staff id", examples=["13800000001"])
    password: Text = Field(examples=["Patient1234"])
    device_cookie: Text = Field(
        "", description="The device_cookie this login's last sign-in (or password reset) on this device answered. "
                        "With it, wrong passwords others send for the login do not lock this device out.",
        examples=[""])


class PasswordReset(BaseModel):
    phone: Text = Field(description="The patient's mobile number, their login", examples=["13800000001"])


class PasswordResetConfirm(BaseModel):
    phone: Text = Field(examples=["13800000001"])
    code: Text = Field(description="The 6 digits sent to the phone", examples=["123456"])
    new_password: Text = Field(description=NEW_PASSWORD, examples=["Patient5678"])


class StaffAccount(BaseModel):
    login: Text = Field(description="Staff id: a letter, then letters, digits, '.', '-', '_'", examples=["sun.li"])
    password: Text = Field(description="At least 8 characters, letters and digits; not a commonly used password "
                                       "(422 password_common) and not holding the staff id, in any case "
                                       "(password_contains_login)")
    display_name: Text = Field(examples=["孙丽"])
    roles: list[Role] = Field(examples=[["registration_office"]])
    grade: Text = Field("", description="Engineers only, optional: the rate grade (junior, intermediate, senior, "
                                        "expert) that prices their worklogs; also set later with PUT "
                                        "/api/v1/admin/staff-accounts/{account_id}/grade", examples=[""])


class StaffGrade(BaseModel):
    grade: Text = Field(description="junior, intermediate, senior or expert", examples=["senior"])


class Hold(BaseModel):
    slot_id: Text


class Pay(BaseModel):
    payment_method_token: Text = Field(
        description="The sandbox provider's test token: tok_ok, tok_decline or tok_timeout", examples=["tok_ok"],
    )
    payment_ticket: Text = Field(
        "", description="The payment_ticket the hold answered with, if you have it: billing then takes the booking "
                        "and its fee from it instead of asking registration. Optional; a retry with or without it is "
                        "the same request.",
    )


class HeldBooking(Booking):  # type: ignore[valid-type, misc]
    payment_ticket: str = Field(
        "", description="Registration's signed word on this hold: pass it with the payment. Opaque; empty when the "
                        "platform issues none.",
    )


class Suspend(BaseModel):
    reason: Text = Field(description="Shown to the patients: required, 1-200 characters, not blank",
                         examples=["医生临时停诊 / doctor unavailable"])


class DeviceTokenRequest(BaseModel):
    device_name: Text = Field(description="1-64 characters of a-z, 0-9 and '-'", examples=["alertmanager"])
    valid_days: Int32 = Field(description="1-366", examples=[90])


class DeviceTokenRevocation(BaseModel):
    reason: Text = Field(description="Why, for the record: 1-500 characters",
                         examples=["posted in a chat by mistake / 误发到群聊"])


class OpenTicket(BaseModel):
    kind: TicketKind = Field(examples=["incident"])
    subsystem_code: Text = Field(description="The subsystem's code, from GET /api/v1/subsystems", examples=["PACS"])
    title: Text = Field(examples=["放射科阅片工作站无法调阅影像 / PACS viewer cannot load studies"])
    description: Text = ""
    # Required, as ticketing requires them: the person opening a ticket says how bad it is.
    impact: Level = Field(description="With urgency, decides the priority", examples=["high"])
    urgency: Level = Field(examples=["medium"])
    # Strict: "yes" or 1 is no answer to "is this a major incident?", which makes a ticket P1.
    major_incident: StrictBool = Field(
        False, description="A major incident: P1 whatever the impact and urgency. Declared by the O&M team "
                           "(engineers, dispatchers, admins) only: 403, reason role_not_allowed, for anyone else")
    on_behalf_of: Text = Field(
        "", description="The service desk (dispatchers, admins) or the registration office opening a ticket for a caller (403 for anyone else): the caller's account id (a UUID, as identity gives it), "
                        "never their name or phone number (422, field on_behalf_of); the caller becomes the "
                        "ticket's requester", examples=["6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"])


TicketAction = Literal["assign", "start", "pause", "resume", "resolve", "confirm", "reopen", "close"]
TicketViewName = Literal["mine", "queue", "board"]


class TicketChange(BaseModel):
    assignee_id: Text | None = Field(None, description="assign: the engineer's account id (a UUID: 422 otherwise; "
                                                       "an account identity does not list as an engineer's: 409 "
                                                       "assignee_not_an_engineer; and/or team)")
    team: Text | None = Field(None, description="assign: the team", examples=["imaging"])
    pause_side: Literal["hospital", "contractor", "vendor"] | None = Field(
        None, description="pause: whose side stopped the work; a contractor's pause does not stop the SLA clock",
    )
    note: Text | None = Field(None, description="resolve: how it was fixed; pause, reopen: why")


class NewComment(BaseModel):
    body: Text = Field(examples=["已重启影像服务，请再试 / image service restarted, please retry"])


class NewWorklog(BaseModel):
    grade: Text = Field("", description="Optional: the worklog is recorded at the rate grade an admin gave the "
                                        "engineer's account (the token's); a different grade is refused (422, field "
                                        "grade)", examples=[""])
    activity: Text = Field(description="diagnosis, repair, onsite, remote, change, travel, documentation",
                           examples=["repair"])
    started_at: Text = Field(description="RFC 3339", examples=["2026-11-26T09:30:00+08:00"])
    minutes: Int32 = Field(examples=[45])
    note: Text = ""


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


class WaitingRoomStanding(BaseModel):
    ticket: int = Field(description="Your ticket: send it in X-Waiting-Room-Ticket with the same request again")
    position: int = Field(description="Your place in the queue (1: you are next)")
    waiting: int = Field(description="Patients waiting for their turn")
    requeued: bool = Field(description="The ticket you sent had its turn while you were away (a minute by default) "
                                       "or its admission ran out: this is a new one, at the back")


class WaitingRoomReply(ErrorReply):
    waiting_room: WaitingRoomStanding | None = Field(
        None, description="Only with reason in_waiting_room: where you stand in the queue")


ERROR_RESPONSES = {
    status: {"model": ErrorReply, "description": description} for status, description in {
        401: "No or no valid access token", 403: "Not allowed for this account", 404: "Not found",
        408: "The body did not arrive in time (30 s by default); the connection is closed",
        409: "Conflicts with the current state", 413: "The body is larger than 256 KiB",
        422: "A field is invalid", 429: "Too many attempts or requests; Retry-After says how many seconds to wait",
        503: "A service is unavailable, or this gateway has as many connections as it takes (reason "
             "server_busy, the connection closed); Retry-After says how many seconds to wait",
    }.items()
}


class CalendarOverride(BaseModel):
    working: StrictBool = Field(description="true: a working day (e.g. a make-up Saturday); false: a holiday")
    note: Text = Field("", max_length=200, examples=["2027 春节调休"])
