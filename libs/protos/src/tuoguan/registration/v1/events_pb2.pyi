from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SlotHeld(_message.Message):
    __slots__ = ("booking_id", "patient_id", "slot_id", "fee_fen", "hold_expires_at")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    patient_id: str
    slot_id: str
    fee_fen: int
    hold_expires_at: str
    def __init__(self, booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., slot_id: _Optional[str] = ..., fee_fen: _Optional[int] = ..., hold_expires_at: _Optional[str] = ...) -> None: ...

class BookingConfirmed(_message.Message):
    __slots__ = ("booking_id", "patient_id", "slot_id", "payment_id", "queue_number")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    patient_id: str
    slot_id: str
    payment_id: str
    queue_number: int
    def __init__(self, booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., slot_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., queue_number: _Optional[int] = ...) -> None: ...

class HoldReleased(_message.Message):
    __slots__ = ("booking_id", "patient_id", "slot_id", "reason")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    patient_id: str
    slot_id: str
    reason: str
    def __init__(self, booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., slot_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BookingCancelled(_message.Message):
    __slots__ = ("booking_id", "patient_id", "slot_id", "reason", "refund_due", "payment_id", "fee_fen")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUND_DUE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    patient_id: str
    slot_id: str
    reason: str
    refund_due: bool
    payment_id: str
    fee_fen: int
    def __init__(self, booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., slot_id: _Optional[str] = ..., reason: _Optional[str] = ..., refund_due: _Optional[bool] = ..., payment_id: _Optional[str] = ..., fee_fen: _Optional[int] = ...) -> None: ...

class PaymentRejected(_message.Message):
    __slots__ = ("booking_id", "payment_id", "reason")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    payment_id: str
    reason: str
    def __init__(self, booking_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SessionSuspended(_message.Message):
    __slots__ = ("session_id", "doctor_id", "service_date", "cancelled_booking_ids", "patient_ids", "reason", "period", "doctor_name", "department_name", "bookings")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BOOKING_IDS_FIELD_NUMBER: _ClassVar[int]
    PATIENT_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    doctor_id: str
    service_date: str
    cancelled_booking_ids: _containers.RepeatedScalarFieldContainer[str]
    patient_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    period: str
    doctor_name: str
    department_name: str
    bookings: _containers.RepeatedCompositeFieldContainer[SuspendedBooking]
    def __init__(self, session_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., service_date: _Optional[str] = ..., cancelled_booking_ids: _Optional[_Iterable[str]] = ..., patient_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., period: _Optional[str] = ..., doctor_name: _Optional[str] = ..., department_name: _Optional[str] = ..., bookings: _Optional[_Iterable[_Union[SuspendedBooking, _Mapping]]] = ...) -> None: ...

class SuspendedBooking(_message.Message):
    __slots__ = ("booking_id", "patient_id", "refund_due", "fee_fen", "starts_at")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_DUE_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    patient_id: str
    refund_due: bool
    fee_fen: int
    starts_at: str
    def __init__(self, booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., refund_due: _Optional[bool] = ..., fee_fen: _Optional[int] = ..., starts_at: _Optional[str] = ...) -> None: ...

class BookingCheckedIn(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...

class BookingMarkedNoShow(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...
