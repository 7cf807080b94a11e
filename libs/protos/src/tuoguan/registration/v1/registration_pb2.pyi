from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Period(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERIOD_UNSPECIFIED: _ClassVar[Period]
    PERIOD_MORNING: _ClassVar[Period]
    PERIOD_AFTERNOON: _ClassVar[Period]
    PERIOD_EVENING: _ClassVar[Period]

class DoctorTitle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCTOR_TITLE_UNSPECIFIED: _ClassVar[DoctorTitle]
    DOCTOR_TITLE_RESIDENT: _ClassVar[DoctorTitle]
    DOCTOR_TITLE_ATTENDING: _ClassVar[DoctorTitle]
    DOCTOR_TITLE_ASSOCIATE_CHIEF: _ClassVar[DoctorTitle]
    DOCTOR_TITLE_CHIEF: _ClassVar[DoctorTitle]

class BookingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOOKING_STATUS_UNSPECIFIED: _ClassVar[BookingStatus]
    BOOKING_STATUS_HELD: _ClassVar[BookingStatus]
    BOOKING_STATUS_CONFIRMED: _ClassVar[BookingStatus]
    BOOKING_STATUS_CANCELLED: _ClassVar[BookingStatus]
    BOOKING_STATUS_EXPIRED: _ClassVar[BookingStatus]
    BOOKING_STATUS_CHECKED_IN: _ClassVar[BookingStatus]
    BOOKING_STATUS_NO_SHOW: _ClassVar[BookingStatus]

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_OPEN: _ClassVar[SessionStatus]
    SESSION_STATUS_SUSPENDED: _ClassVar[SessionStatus]
PERIOD_UNSPECIFIED: Period
PERIOD_MORNING: Period
PERIOD_AFTERNOON: Period
PERIOD_EVENING: Period
DOCTOR_TITLE_UNSPECIFIED: DoctorTitle
DOCTOR_TITLE_RESIDENT: DoctorTitle
DOCTOR_TITLE_ATTENDING: DoctorTitle
DOCTOR_TITLE_ASSOCIATE_CHIEF: DoctorTitle
DOCTOR_TITLE_CHIEF: DoctorTitle
BOOKING_STATUS_UNSPECIFIED: BookingStatus
BOOKING_STATUS_HELD: BookingStatus
BOOKING_STATUS_CONFIRMED: BookingStatus
BOOKING_STATUS_CANCELLED: BookingStatus
BOOKING_STATUS_EXPIRED: BookingStatus
BOOKING_STATUS_CHECKED_IN: BookingStatus
BOOKING_STATUS_NO_SHOW: BookingStatus
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_OPEN: SessionStatus
SESSION_STATUS_SUSPENDED: SessionStatus

class Department(_message.Message):
    __slots__ = ("department_id", "code", "name", "name_en")
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_EN_FIELD_NUMBER: _ClassVar[int]
    department_id: str
    code: str
    name: str
    name_en: str
    def __init__(self, department_id: _Optional[str] = ..., code: _Optional[str] = ..., name: _Optional[str] = ..., name_en: _Optional[str] = ...) -> None: ...

class Doctor(_message.Message):
    __slots__ = ("doctor_id", "department_id", "name", "title", "speciality", "fee_fen", "speciality_en")
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SPECIALITY_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    SPECIALITY_EN_FIELD_NUMBER: _ClassVar[int]
    doctor_id: str
    department_id: str
    name: str
    title: DoctorTitle
    speciality: str
    fee_fen: int
    speciality_en: str
    def __init__(self, doctor_id: _Optional[str] = ..., department_id: _Optional[str] = ..., name: _Optional[str] = ..., title: _Optional[_Union[DoctorTitle, str]] = ..., speciality: _Optional[str] = ..., fee_fen: _Optional[int] = ..., speciality_en: _Optional[str] = ...) -> None: ...

class Slot(_message.Message):
    __slots__ = ("slot_id", "session_id", "doctor_id", "department_id", "starts_at", "ends_at", "capacity", "remaining", "fee_fen", "service_date", "period")
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    slot_id: str
    session_id: str
    doctor_id: str
    department_id: str
    starts_at: str
    ends_at: str
    capacity: int
    remaining: int
    fee_fen: int
    service_date: str
    period: Period
    def __init__(self, slot_id: _Optional[str] = ..., session_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., department_id: _Optional[str] = ..., starts_at: _Optional[str] = ..., ends_at: _Optional[str] = ..., capacity: _Optional[int] = ..., remaining: _Optional[int] = ..., fee_fen: _Optional[int] = ..., service_date: _Optional[str] = ..., period: _Optional[_Union[Period, str]] = ...) -> None: ...

class Booking(_message.Message):
    __slots__ = ("booking_id", "booking_number", "patient_id", "slot_id", "doctor_id", "department_id", "starts_at", "ends_at", "status", "fee_fen", "hold_expires_at", "queue_number", "cancel_reason", "service_date", "doctor_name", "department_name", "refund_due", "payment_id", "session_id", "period", "created_at", "refunded_at", "session_suspend_reason")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FEE_FEN_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    REFUND_DUE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    SESSION_SUSPEND_REASON_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    booking_number: str
    patient_id: str
    slot_id: str
    doctor_id: str
    department_id: str
    starts_at: str
    ends_at: str
    status: BookingStatus
    fee_fen: int
    hold_expires_at: str
    queue_number: int
    cancel_reason: str
    service_date: str
    doctor_name: str
    department_name: str
    refund_due: bool
    payment_id: str
    session_id: str
    period: Period
    created_at: str
    refunded_at: str
    session_suspend_reason: str
    def __init__(self, booking_id: _Optional[str] = ..., booking_number: _Optional[str] = ..., patient_id: _Optional[str] = ..., slot_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., department_id: _Optional[str] = ..., starts_at: _Optional[str] = ..., ends_at: _Optional[str] = ..., status: _Optional[_Union[BookingStatus, str]] = ..., fee_fen: _Optional[int] = ..., hold_expires_at: _Optional[str] = ..., queue_number: _Optional[int] = ..., cancel_reason: _Optional[str] = ..., service_date: _Optional[str] = ..., doctor_name: _Optional[str] = ..., department_name: _Optional[str] = ..., refund_due: _Optional[bool] = ..., payment_id: _Optional[str] = ..., session_id: _Optional[str] = ..., period: _Optional[_Union[Period, str]] = ..., created_at: _Optional[str] = ..., refunded_at: _Optional[str] = ..., session_suspend_reason: _Optional[str] = ...) -> None: ...

class SessionTemplate(_message.Message):
    __slots__ = ("template_id", "doctor_id", "weekday", "period", "start_time", "end_time", "slot_minutes", "capacity_per_slot", "active")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    WEEKDAY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SLOT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_PER_SLOT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    doctor_id: str
    weekday: int
    period: Period
    start_time: str
    end_time: str
    slot_minutes: int
    capacity_per_slot: int
    active: bool
    def __init__(self, template_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., weekday: _Optional[int] = ..., period: _Optional[_Union[Period, str]] = ..., start_time: _Optional[str] = ..., end_time: _Optional[str] = ..., slot_minutes: _Optional[int] = ..., capacity_per_slot: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "doctor_id", "service_date", "period", "status", "capacity", "booked", "held", "free", "doctor_name", "department_id", "starts_at", "ends_at", "suspend_reason")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    BOOKED_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_REASON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    doctor_id: str
    service_date: str
    period: Period
    status: SessionStatus
    capacity: int
    booked: int
    held: int
    free: int
    doctor_name: str
    department_id: str
    starts_at: str
    ends_at: str
    suspend_reason: str
    def __init__(self, session_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., service_date: _Optional[str] = ..., period: _Optional[_Union[Period, str]] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., capacity: _Optional[int] = ..., booked: _Optional[int] = ..., held: _Optional[int] = ..., free: _Optional[int] = ..., doctor_name: _Optional[str] = ..., department_id: _Optional[str] = ..., starts_at: _Optional[str] = ..., ends_at: _Optional[str] = ..., suspend_reason: _Optional[str] = ...) -> None: ...

class ListDepartmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDepartmentsResponse(_message.Message):
    __slots__ = ("departments",)
    DEPARTMENTS_FIELD_NUMBER: _ClassVar[int]
    departments: _containers.RepeatedCompositeFieldContainer[Department]
    def __init__(self, departments: _Optional[_Iterable[_Union[Department, _Mapping]]] = ...) -> None: ...

class ListDoctorsRequest(_message.Message):
    __slots__ = ("department_id",)
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    department_id: str
    def __init__(self, department_id: _Optional[str] = ...) -> None: ...

class ListDoctorsResponse(_message.Message):
    __slots__ = ("doctors",)
    DOCTORS_FIELD_NUMBER: _ClassVar[int]
    doctors: _containers.RepeatedCompositeFieldContainer[Doctor]
    def __init__(self, doctors: _Optional[_Iterable[_Union[Doctor, _Mapping]]] = ...) -> None: ...

class ListSlotsRequest(_message.Message):
    __slots__ = ("department_id", "doctor_id", "from_date", "to_date", "only_available")
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    ONLY_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    department_id: str
    doctor_id: str
    from_date: str
    to_date: str
    only_available: bool
    def __init__(self, department_id: _Optional[str] = ..., doctor_id: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., only_available: _Optional[bool] = ...) -> None: ...

class ListSlotsResponse(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[Slot]
    def __init__(self, slots: _Optional[_Iterable[_Union[Slot, _Mapping]]] = ...) -> None: ...

class HoldSlotRequest(_message.Message):
    __slots__ = ("slot_id", "idempotency_key")
    SLOT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    slot_id: str
    idempotency_key: str
    def __init__(self, slot_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class HoldSlotResponse(_message.Message):
    __slots__ = ("booking", "payment_ticket")
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TICKET_FIELD_NUMBER: _ClassVar[int]
    booking: Booking
    payment_ticket: str
    def __init__(self, booking: _Optional[_Union[Booking, _Mapping]] = ..., payment_ticket: _Optional[str] = ...) -> None: ...

class GetBookingRequest(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...

class GetBookingResponse(_message.Message):
    __slots__ = ("booking",)
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    booking: Booking
    def __init__(self, booking: _Optional[_Union[Booking, _Mapping]] = ...) -> None: ...

class ListMyBookingsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMyBookingsResponse(_message.Message):
    __slots__ = ("bookings", "next_page_token")
    BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bookings: _containers.RepeatedCompositeFieldContainer[Booking]
    next_page_token: str
    def __init__(self, bookings: _Optional[_Iterable[_Union[Booking, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelBookingRequest(_message.Message):
    __slots__ = ("booking_id", "idempotency_key")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    idempotency_key: str
    def __init__(self, booking_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CancelBookingResponse(_message.Message):
    __slots__ = ("booking",)
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    booking: Booking
    def __init__(self, booking: _Optional[_Union[Booking, _Mapping]] = ...) -> None: ...

class PutSessionTemplateRequest(_message.Message):
    __slots__ = ("template", "idempotency_key")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    template: SessionTemplate
    idempotency_key: str
    def __init__(self, template: _Optional[_Union[SessionTemplate, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PutSessionTemplateResponse(_message.Message):
    __slots__ = ("template",)
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    template: SessionTemplate
    def __init__(self, template: _Optional[_Union[SessionTemplate, _Mapping]] = ...) -> None: ...

class ListSessionTemplatesRequest(_message.Message):
    __slots__ = ("doctor_id",)
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    doctor_id: str
    def __init__(self, doctor_id: _Optional[str] = ...) -> None: ...

class ListSessionTemplatesResponse(_message.Message):
    __slots__ = ("templates",)
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[SessionTemplate]
    def __init__(self, templates: _Optional[_Iterable[_Union[SessionTemplate, _Mapping]]] = ...) -> None: ...

class PublishScheduleRequest(_message.Message):
    __slots__ = ("days_ahead", "release_now")
    DAYS_AHEAD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_NOW_FIELD_NUMBER: _ClassVar[int]
    days_ahead: int
    release_now: bool
    def __init__(self, days_ahead: _Optional[int] = ..., release_now: _Optional[bool] = ...) -> None: ...

class PublishScheduleResponse(_message.Message):
    __slots__ = ("sessions_created", "slots_created")
    SESSIONS_CREATED_FIELD_NUMBER: _ClassVar[int]
    SLOTS_CREATED_FIELD_NUMBER: _ClassVar[int]
    sessions_created: int
    slots_created: int
    def __init__(self, sessions_created: _Optional[int] = ..., slots_created: _Optional[int] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("service_date", "department_id", "doctor_id")
    SERVICE_DATE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DOCTOR_ID_FIELD_NUMBER: _ClassVar[int]
    service_date: str
    department_id: str
    doctor_id: str
    def __init__(self, service_date: _Optional[str] = ..., department_id: _Optional[str] = ..., doctor_id: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class ListSessionBookingsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListSessionBookingsResponse(_message.Message):
    __slots__ = ("session", "bookings")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    bookings: _containers.RepeatedCompositeFieldContainer[Booking]
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., bookings: _Optional[_Iterable[_Union[Booking, _Mapping]]] = ...) -> None: ...

class SuspendSessionRequest(_message.Message):
    __slots__ = ("session_id", "reason", "idempotency_key")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reason: str
    idempotency_key: str
    def __init__(self, session_id: _Optional[str] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SuspendSessionResponse(_message.Message):
    __slots__ = ("session", "cancelled_bookings")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BOOKINGS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    cancelled_bookings: _containers.RepeatedCompositeFieldContainer[Booking]
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., cancelled_bookings: _Optional[_Iterable[_Union[Booking, _Mapping]]] = ...) -> None: ...

class CheckInBookingRequest(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...

class CheckInBookingResponse(_message.Message):
    __slots__ = ("booking",)
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    booking: Booking
    def __init__(self, booking: _Optional[_Union[Booking, _Mapping]] = ...) -> None: ...

class MarkNoShowRequest(_message.Message):
    __slots__ = ("booking_id",)
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    def __init__(self, booking_id: _Optional[str] = ...) -> None: ...

class MarkNoShowResponse(_message.Message):
    __slots__ = ("booking",)
    BOOKING_FIELD_NUMBER: _ClassVar[int]
    booking: Booking
    def __init__(self, booking: _Optional[_Union[Booking, _Mapping]] = ...) -> None: ...
