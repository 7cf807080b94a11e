from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PENDING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CAPTURED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_FAILED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_UNKNOWN: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REFUNDED: _ClassVar[PaymentStatus]
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_PENDING: PaymentStatus
PAYMENT_STATUS_CAPTURED: PaymentStatus
PAYMENT_STATUS_FAILED: PaymentStatus
PAYMENT_STATUS_UNKNOWN: PaymentStatus
PAYMENT_STATUS_REFUNDED: PaymentStatus

class Payment(_message.Message):
    __slots__ = ("payment_id", "booking_id", "patient_id", "amount_fen", "status", "provider_reference", "failure_reason", "created_at", "settled_at", "refunded_fen", "refunded_after_failure_fen", "refunded_after_failure_at")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SETTLED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AFTER_FAILURE_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AFTER_FAILURE_AT_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    booking_id: str
    patient_id: str
    amount_fen: int
    status: PaymentStatus
    provider_reference: str
    failure_reason: str
    created_at: str
    settled_at: str
    refunded_fen: int
    refunded_after_failure_fen: int
    refunded_after_failure_at: str
    def __init__(self, payment_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., patient_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., provider_reference: _Optional[str] = ..., failure_reason: _Optional[str] = ..., created_at: _Optional[str] = ..., settled_at: _Optional[str] = ..., refunded_fen: _Optional[int] = ..., refunded_after_failure_fen: _Optional[int] = ..., refunded_after_failure_at: _Optional[str] = ...) -> None: ...

class PayRegistrationFeeRequest(_message.Message):
    __slots__ = ("booking_id", "payment_method_token", "idempotency_key", "payment_ticket")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TICKET_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    payment_method_token: str
    idempotency_key: str
    payment_ticket: str
    def __init__(self, booking_id: _Optional[str] = ..., payment_method_token: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., payment_ticket: _Optional[str] = ...) -> None: ...

class PayRegistrationFeeResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: Payment
    def __init__(self, payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

class GetPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: Payment
    def __init__(self, payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class ListPaymentsRequest(_message.Message):
    __slots__ = ("booking_id", "page_size", "page_token")
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    booking_id: str
    page_size: int
    page_token: str
    def __init__(self, booking_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPaymentsResponse(_message.Message):
    __slots__ = ("payments", "next_page_token")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[Payment]
    next_page_token: str
    def __init__(self, payments: _Optional[_Iterable[_Union[Payment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LedgerBalance(_message.Message):
    __slots__ = ("account", "debit_fen", "credit_fen", "balance_fen")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_FEN_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    account: str
    debit_fen: int
    credit_fen: int
    balance_fen: int
    def __init__(self, account: _Optional[str] = ..., debit_fen: _Optional[int] = ..., credit_fen: _Optional[int] = ..., balance_fen: _Optional[int] = ...) -> None: ...

class GetLedgerBalancesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLedgerBalancesResponse(_message.Message):
    __slots__ = ("balances", "total_debit_fen", "total_credit_fen")
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DEBIT_FEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CREDIT_FEN_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[LedgerBalance]
    total_debit_fen: int
    total_credit_fen: int
    def __init__(self, balances: _Optional[_Iterable[_Union[LedgerBalance, _Mapping]]] = ..., total_debit_fen: _Optional[int] = ..., total_credit_fen: _Optional[int] = ...) -> None: ...

class GetReconciliationReportRequest(_message.Message):
    __slots__ = ("business_date",)
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    def __init__(self, business_date: _Optional[str] = ...) -> None: ...

class ReconciliationLine(_message.Message):
    __slots__ = ("payment_id", "provider_reference", "ledger_fen", "provider_fen", "outcome", "kind", "reason")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    provider_reference: str
    ledger_fen: int
    provider_fen: int
    outcome: str
    kind: str
    reason: str
    def __init__(self, payment_id: _Optional[str] = ..., provider_reference: _Optional[str] = ..., ledger_fen: _Optional[int] = ..., provider_fen: _Optional[int] = ..., outcome: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetReconciliationReportResponse(_message.Message):
    __slots__ = ("business_date", "captured_fen", "refunded_fen", "matched", "mismatched", "lines", "provider_captured_fen", "provider_refunded_fen", "missing_in_ledger", "missing_at_provider", "amount_mismatches")
    BUSINESS_DATE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHED_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_CAPTURED_FEN_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    MISSING_IN_LEDGER_FIELD_NUMBER: _ClassVar[int]
    MISSING_AT_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    business_date: str
    captured_fen: int
    refunded_fen: int
    matched: int
    mismatched: int
    lines: _containers.RepeatedCompositeFieldContainer[ReconciliationLine]
    provider_captured_fen: int
    provider_refunded_fen: int
    missing_in_ledger: int
    missing_at_provider: int
    amount_mismatches: int
    def __init__(self, business_date: _Optional[str] = ..., captured_fen: _Optional[int] = ..., refunded_fen: _Optional[int] = ..., matched: _Optional[int] = ..., mismatched: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[ReconciliationLine, _Mapping]]] = ..., provider_captured_fen: _Optional[int] = ..., provider_refunded_fen: _Optional[int] = ..., missing_in_ledger: _Optional[int] = ..., missing_at_provider: _Optional[int] = ..., amount_mismatches: _Optional[int] = ...) -> None: ...
