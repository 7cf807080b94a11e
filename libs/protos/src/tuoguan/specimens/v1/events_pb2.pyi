from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceAlarmRaised(_message.Message):
    __slots__ = ("alarm_id", "device_id", "subsystem_code", "kind", "severity", "raised_at", "summary")
    ALARM_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    alarm_id: str
    device_id: str
    subsystem_code: str
    kind: str
    severity: str
    raised_at: str
    summary: str
    def __init__(self, alarm_id: _Optional[str] = ..., device_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., kind: _Optional[str] = ..., severity: _Optional[str] = ..., raised_at: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...

class DeviceAlarmCleared(_message.Message):
    __slots__ = ("alarm_id", "device_id", "subsystem_code", "cleared_at")
    ALARM_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    CLEARED_AT_FIELD_NUMBER: _ClassVar[int]
    alarm_id: str
    device_id: str
    subsystem_code: str
    cleared_at: str
    def __init__(self, alarm_id: _Optional[str] = ..., device_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., cleared_at: _Optional[str] = ...) -> None: ...
