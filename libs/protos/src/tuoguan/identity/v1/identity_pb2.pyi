from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PATIENT: _ClassVar[Role]
    ROLE_REGISTRATION_OFFICE: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_CLINICIAN: _ClassVar[Role]
    ROLE_ENGINEER: _ClassVar[Role]
    ROLE_DISPATCHER: _ClassVar[Role]
    ROLE_CONSULTANT: _ClassVar[Role]
    ROLE_FINANCE: _ClassVar[Role]
    ROLE_DEVICE: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_PATIENT: Role
ROLE_REGISTRATION_OFFICE: Role
ROLE_ADMIN: Role
ROLE_CLINICIAN: Role
ROLE_ENGINEER: Role
ROLE_DISPATCHER: Role
ROLE_CONSULTANT: Role
ROLE_FINANCE: Role
ROLE_DEVICE: Role

class Account(_message.Message):
    __slots__ = ("account_id", "login", "display_name", "roles", "grade")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    login: str
    display_name: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    grade: str
    def __init__(self, account_id: _Optional[str] = ..., login: _Optional[str] = ..., display_name: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., grade: _Optional[str] = ...) -> None: ...

class RequestSignUpCodeRequest(_message.Message):
    __slots__ = ("phone",)
    PHONE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    def __init__(self, phone: _Optional[str] = ...) -> None: ...

class RequestSignUpCodeResponse(_message.Message):
    __slots__ = ("expires_at", "resend_after_seconds")
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESEND_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    expires_at: str
    resend_after_seconds: int
    def __init__(self, expires_at: _Optional[str] = ..., resend_after_seconds: _Optional[int] = ...) -> None: ...

class SignUpPatientRequest(_message.Message):
    __slots__ = ("phone", "password", "display_name", "idempotency_key", "code")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    password: str
    display_name: str
    idempotency_key: str
    code: str
    def __init__(self, phone: _Optional[str] = ..., password: _Optional[str] = ..., display_name: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class SignUpPatientResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class SignInRequest(_message.Message):
    __slots__ = ("login", "password", "device_cookie")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COOKIE_FIELD_NUMBER: _ClassVar[int]
    login: str
    password: str
    device_cookie: str
    def __init__(self, login: _Optional[str] = ..., password: _Optional[str] = ..., device_cookie: _Optional[str] = ...) -> None: ...

class SignInResponse(_message.Message):
    __slots__ = ("access_token", "expires_in_seconds", "account", "device_cookie")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COOKIE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expires_in_seconds: int
    account: Account
    device_cookie: str
    def __init__(self, access_token: _Optional[str] = ..., expires_in_seconds: _Optional[int] = ..., account: _Optional[_Union[Account, _Mapping]] = ..., device_cookie: _Optional[str] = ...) -> None: ...

class SignOutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignOutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMyAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMyAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class CreateStaffAccountRequest(_message.Message):
    __slots__ = ("login", "password", "display_name", "roles", "idempotency_key", "grade")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    login: str
    password: str
    display_name: str
    roles: _containers.RepeatedScalarFieldContainer[Role]
    idempotency_key: str
    grade: str
    def __init__(self, login: _Optional[str] = ..., password: _Optional[str] = ..., display_name: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ..., idempotency_key: _Optional[str] = ..., grade: _Optional[str] = ...) -> None: ...

class CreateStaffAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class RequestPasswordResetRequest(_message.Message):
    __slots__ = ("phone",)
    PHONE_FIELD_NUMBER: _ClassVar[int]
    phone: str
    def __init__(self, phone: _Optional[str] = ...) -> None: ...

class RequestPasswordResetResponse(_message.Message):
    __slots__ = ("expires_at", "resend_after_seconds")
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESEND_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    expires_at: str
    resend_after_seconds: int
    def __init__(self, expires_at: _Optional[str] = ..., resend_after_seconds: _Optional[int] = ...) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("phone", "code", "new_password", "idempotency_key")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    phone: str
    code: str
    new_password: str
    idempotency_key: str
    def __init__(self, phone: _Optional[str] = ..., code: _Optional[str] = ..., new_password: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ResetPasswordResponse(_message.Message):
    __slots__ = ("device_cookie",)
    DEVICE_COOKIE_FIELD_NUMBER: _ClassVar[int]
    device_cookie: str
    def __init__(self, device_cookie: _Optional[str] = ...) -> None: ...

class IssueDeviceTokenRequest(_message.Message):
    __slots__ = ("device_name", "valid_days", "idempotency_key")
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    VALID_DAYS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    device_name: str
    valid_days: int
    idempotency_key: str
    def __init__(self, device_name: _Optional[str] = ..., valid_days: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class IssueDeviceTokenResponse(_message.Message):
    __slots__ = ("access_token", "expires_at", "token_id")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expires_at: str
    token_id: str
    def __init__(self, access_token: _Optional[str] = ..., expires_at: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

class DeviceToken(_message.Message):
    __slots__ = ("token_id", "device_name", "issued_at", "expires_at", "issued_by", "revoked_at", "revoked_by", "revoke_reason")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    device_name: str
    issued_at: str
    expires_at: str
    issued_by: str
    revoked_at: str
    revoked_by: str
    revoke_reason: str
    def __init__(self, token_id: _Optional[str] = ..., device_name: _Optional[str] = ..., issued_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., issued_by: _Optional[str] = ..., revoked_at: _Optional[str] = ..., revoked_by: _Optional[str] = ..., revoke_reason: _Optional[str] = ...) -> None: ...

class ListDeviceTokensRequest(_message.Message):
    __slots__ = ("device_name", "include_expired")
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    device_name: str
    include_expired: bool
    def __init__(self, device_name: _Optional[str] = ..., include_expired: _Optional[bool] = ...) -> None: ...

class ListDeviceTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[DeviceToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[DeviceToken, _Mapping]]] = ...) -> None: ...

class RevokeDeviceTokenRequest(_message.Message):
    __slots__ = ("token_id", "reason")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    reason: str
    def __init__(self, token_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeDeviceTokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: DeviceToken
    def __init__(self, token: _Optional[_Union[DeviceToken, _Mapping]] = ...) -> None: ...

class ListRevokedTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRevokedTokensResponse(_message.Message):
    __slots__ = ("token_ids", "withdrawn_accounts")
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    token_ids: _containers.RepeatedScalarFieldContainer[str]
    withdrawn_accounts: _containers.RepeatedCompositeFieldContainer[WithdrawnAccount]
    def __init__(self, token_ids: _Optional[_Iterable[str]] = ..., withdrawn_accounts: _Optional[_Iterable[_Union[WithdrawnAccount, _Mapping]]] = ...) -> None: ...

class WithdrawnAccount(_message.Message):
    __slots__ = ("account_id", "token_generation")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_GENERATION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    token_generation: int
    def __init__(self, account_id: _Optional[str] = ..., token_generation: _Optional[int] = ...) -> None: ...

class ListStaffRequest(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: str
    def __init__(self, role: _Optional[str] = ...) -> None: ...

class SetStaffGradeRequest(_message.Message):
    __slots__ = ("account_id", "grade")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    grade: str
    def __init__(self, account_id: _Optional[str] = ..., grade: _Optional[str] = ...) -> None: ...

class SetStaffGradeResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class ListStaffResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ...) -> None: ...
