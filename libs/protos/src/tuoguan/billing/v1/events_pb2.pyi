from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentCaptured(_message.Message):
    __slots__ = ("payment_id", "booking_id", "patient_id", "amount_fen")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    booking_id: str
    patient_id: str
    amount_fen: int
    def __init__(self, payment_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class PaymentFailed(_message.Message):
    __slots__ = ("payment_id", "booking_id", "patient_id", "reason")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    booking_id: str
    patient_id: str
    reason: str
    def __init__(self, payment_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RefundIssued(_message.Message):
    __slots__ = ("payment_id", "booking_id", "patient_id", "amount_fen", "refund_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    booking_id: str
    patient_id: str
    amount_fen: int
    refund_id: str
    def __init__(self, payment_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., refund_id: _Optional[str] = ...) -> None: ...
