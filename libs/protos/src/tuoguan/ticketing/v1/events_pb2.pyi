from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class TicketOpened(_message.Message):
    __slots__ = ("ticket_id", "number", "subsystem_code", "kind", "priority", "major_incident", "source", "requester_id", "opened_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAJOR_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    number: str
    subsystem_code: str
    kind: str
    priority: str
    major_incident: bool
    source: str
    requester_id: str
    opened_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., number: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., kind: _Optional[str] = ..., priority: _Optional[str] = ..., major_incident: _Optional[bool] = ..., source: _Optional[str] = ..., requester_id: _Optional[str] = ..., opened_at: _Optional[str] = ...) -> None: ...

class TicketAssigned(_message.Message):
    __slots__ = ("ticket_id", "assignee_id", "team", "assigned_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    assignee_id: str
    team: str
    assigned_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., assignee_id: _Optional[str] = ..., team: _Optional[str] = ..., assigned_at: _Optional[str] = ...) -> None: ...

class TicketPaused(_message.Message):
    __slots__ = ("ticket_id", "side", "clock_stopped", "paused_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    CLOCK_STOPPED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    side: str
    clock_stopped: bool
    paused_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., side: _Optional[str] = ..., clock_stopped: _Optional[bool] = ..., paused_at: _Optional[str] = ...) -> None: ...

class TicketResumed(_message.Message):
    __slots__ = ("ticket_id", "resumed_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    resumed_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., resumed_at: _Optional[str] = ...) -> None: ...

class TicketResolved(_message.Message):
    __slots__ = ("ticket_id", "subsystem_code", "priority", "assignee_id", "resolved_at", "resolution_elapsed_seconds", "resolution_breached", "response_breached", "sla_priority")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_BREACHED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BREACHED_FIELD_NUMBER: _ClassVar[int]
    SLA_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    subsystem_code: str
    priority: str
    assignee_id: str
    resolved_at: str
    resolution_elapsed_seconds: float
    resolution_breached: bool
    response_breached: bool
    sla_priority: str
    def __init__(self, ticket_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., priority: _Optional[str] = ..., assignee_id: _Optional[str] = ..., resolved_at: _Optional[str] = ..., resolution_elapsed_seconds: _Optional[float] = ..., resolution_breached: _Optional[bool] = ..., response_breached: _Optional[bool] = ..., sla_priority: _Optional[str] = ...) -> None: ...

class TicketReopened(_message.Message):
    __slots__ = ("ticket_id", "reopened_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    REOPENED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    reopened_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., reopened_at: _Optional[str] = ...) -> None: ...

class TicketClosed(_message.Message):
    __slots__ = ("ticket_id", "subsystem_code", "priority", "how", "closed_at", "resolution_breached", "response_breached", "resolution_elapsed_seconds", "billable_minutes", "sla_priority")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    HOW_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_BREACHED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BREACHED_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SLA_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    subsystem_code: str
    priority: str
    how: str
    closed_at: str
    resolution_breached: bool
    response_breached: bool
    resolution_elapsed_seconds: float
    billable_minutes: int
    sla_priority: str
    def __init__(self, ticket_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., priority: _Optional[str] = ..., how: _Optional[str] = ..., closed_at: _Optional[str] = ..., resolution_breached: _Optional[bool] = ..., response_breached: _Optional[bool] = ..., resolution_elapsed_seconds: _Optional[float] = ..., billable_minutes: _Optional[int] = ..., sla_priority: _Optional[str] = ...) -> None: ...

class WorklogRecorded(_message.Message):
    __slots__ = ("worklog_id", "ticket_id", "engineer_id", "grade", "activity", "started_at", "minutes")
    WORKLOG_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_ID_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    worklog_id: str
    ticket_id: str
    engineer_id: str
    grade: str
    activity: str
    started_at: str
    minutes: int
    def __init__(self, worklog_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., engineer_id: _Optional[str] = ..., grade: _Optional[str] = ..., activity: _Optional[str] = ..., started_at: _Optional[str] = ..., minutes: _Optional[int] = ...) -> None: ...

class WorklogBillable(_message.Message):
    __slots__ = ("worklog_id", "ticket_id", "engineer_id", "grade", "minutes", "started_at", "billable_at")
    WORKLOG_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_ID_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_AT_FIELD_NUMBER: _ClassVar[int]
    worklog_id: str
    ticket_id: str
    engineer_id: str
    grade: str
    minutes: int
    started_at: str
    billable_at: str
    def __init__(self, worklog_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., engineer_id: _Optional[str] = ..., grade: _Optional[str] = ..., minutes: _Optional[int] = ..., started_at: _Optional[str] = ..., billable_at: _Optional[str] = ...) -> None: ...

class SlaBreached(_message.Message):
    __slots__ = ("ticket_id", "subsystem_code", "priority", "target", "due_at", "detected_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    subsystem_code: str
    priority: str
    target: str
    due_at: str
    detected_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., priority: _Optional[str] = ..., target: _Optional[str] = ..., due_at: _Optional[str] = ..., detected_at: _Optional[str] = ...) -> None: ...

class SlaEscalated(_message.Message):
    __slots__ = ("ticket_id", "level", "priority", "escalated_at")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_AT_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    level: int
    priority: str
    escalated_at: str
    def __init__(self, ticket_id: _Optional[str] = ..., level: _Optional[int] = ..., priority: _Optional[str] = ..., escalated_at: _Optional[str] = ...) -> None: ...
