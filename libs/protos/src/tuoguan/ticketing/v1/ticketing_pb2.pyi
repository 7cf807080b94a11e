from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Criticality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CRITICALITY_UNSPECIFIED: _ClassVar[Criticality]
    CRITICALITY_CRITICAL: _ClassVar[Criticality]
    CRITICALITY_HIGH: _ClassVar[Criticality]
    CRITICALITY_NORMAL: _ClassVar[Criticality]
    CRITICALITY_LOW: _ClassVar[Criticality]

class TicketKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_KIND_UNSPECIFIED: _ClassVar[TicketKind]
    TICKET_KIND_INCIDENT: _ClassVar[TicketKind]
    TICKET_KIND_SERVICE_REQUEST: _ClassVar[TicketKind]
    TICKET_KIND_CHANGE: _ClassVar[TicketKind]

class TicketSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_SOURCE_UNSPECIFIED: _ClassVar[TicketSource]
    TICKET_SOURCE_PORTAL: _ClassVar[TicketSource]
    TICKET_SOURCE_STAFF: _ClassVar[TicketSource]
    TICKET_SOURCE_ALERT: _ClassVar[TicketSource]
    TICKET_SOURCE_DEVICE: _ClassVar[TicketSource]

class Level(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEVEL_UNSPECIFIED: _ClassVar[Level]
    LEVEL_HIGH: _ClassVar[Level]
    LEVEL_MEDIUM: _ClassVar[Level]
    LEVEL_LOW: _ClassVar[Level]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_P1: _ClassVar[Priority]
    PRIORITY_P2: _ClassVar[Priority]
    PRIORITY_P3: _ClassVar[Priority]
    PRIORITY_P4: _ClassVar[Priority]

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATUS_UNSPECIFIED: _ClassVar[TicketStatus]
    TICKET_STATUS_NEW: _ClassVar[TicketStatus]
    TICKET_STATUS_ASSIGNED: _ClassVar[TicketStatus]
    TICKET_STATUS_IN_PROGRESS: _ClassVar[TicketStatus]
    TICKET_STATUS_PENDING: _ClassVar[TicketStatus]
    TICKET_STATUS_RESOLVED: _ClassVar[TicketStatus]
    TICKET_STATUS_CLOSED: _ClassVar[TicketStatus]

class TicketAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_ACTION_UNSPECIFIED: _ClassVar[TicketAction]
    TICKET_ACTION_ASSIGN: _ClassVar[TicketAction]
    TICKET_ACTION_START: _ClassVar[TicketAction]
    TICKET_ACTION_PAUSE: _ClassVar[TicketAction]
    TICKET_ACTION_RESUME: _ClassVar[TicketAction]
    TICKET_ACTION_RESOLVE: _ClassVar[TicketAction]
    TICKET_ACTION_CONFIRM: _ClassVar[TicketAction]
    TICKET_ACTION_REOPEN: _ClassVar[TicketAction]
    TICKET_ACTION_CLOSE: _ClassVar[TicketAction]

class PauseSide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAUSE_SIDE_UNSPECIFIED: _ClassVar[PauseSide]
    PAUSE_SIDE_HOSPITAL: _ClassVar[PauseSide]
    PAUSE_SIDE_CONTRACTOR: _ClassVar[PauseSide]
    PAUSE_SIDE_VENDOR: _ClassVar[PauseSide]

class TicketView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_VIEW_UNSPECIFIED: _ClassVar[TicketView]
    TICKET_VIEW_MINE: _ClassVar[TicketView]
    TICKET_VIEW_QUEUE: _ClassVar[TicketView]
    TICKET_VIEW_BOARD: _ClassVar[TicketView]
CRITICALITY_UNSPECIFIED: Criticality
CRITICALITY_CRITICAL: Criticality
CRITICALITY_HIGH: Criticality
CRITICALITY_NORMAL: Criticality
CRITICALITY_LOW: Criticality
TICKET_KIND_UNSPECIFIED: TicketKind
TICKET_KIND_INCIDENT: TicketKind
TICKET_KIND_SERVICE_REQUEST: TicketKind
TICKET_KIND_CHANGE: TicketKind
TICKET_SOURCE_UNSPECIFIED: TicketSource
TICKET_SOURCE_PORTAL: TicketSource
TICKET_SOURCE_STAFF: TicketSource
TICKET_SOURCE_ALERT: TicketSource
TICKET_SOURCE_DEVICE: TicketSource
LEVEL_UNSPECIFIED: Level
LEVEL_HIGH: Level
LEVEL_MEDIUM: Level
LEVEL_LOW: Level
PRIORITY_UNSPECIFIED: Priority
PRIORITY_P1: Priority
PRIORITY_P2: Priority
PRIORITY_P3: Priority
PRIORITY_P4: Priority
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_NEW: TicketStatus
TICKET_STATUS_ASSIGNED: TicketStatus
TICKET_STATUS_IN_PROGRESS: TicketStatus
TICKET_STATUS_PENDING: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_CLOSED: TicketStatus
TICKET_ACTION_UNSPECIFIED: TicketAction
TICKET_ACTION_ASSIGN: TicketAction
TICKET_ACTION_START: TicketAction
TICKET_ACTION_PAUSE: TicketAction
TICKET_ACTION_RESUME: TicketAction
TICKET_ACTION_RESOLVE: TicketAction
TICKET_ACTION_CONFIRM: TicketAction
TICKET_ACTION_REOPEN: TicketAction
TICKET_ACTION_CLOSE: TicketAction
PAUSE_SIDE_UNSPECIFIED: PauseSide
PAUSE_SIDE_HOSPITAL: PauseSide
PAUSE_SIDE_CONTRACTOR: PauseSide
PAUSE_SIDE_VENDOR: PauseSide
TICKET_VIEW_UNSPECIFIED: TicketView
TICKET_VIEW_MINE: TicketView
TICKET_VIEW_QUEUE: TicketView
TICKET_VIEW_BOARD: TicketView

class Subsystem(_message.Message):
    __slots__ = ("subsystem_id", "code", "name", "name_en", "category", "criticality", "team", "vendor", "service_hours", "active")
    SUBSYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_EN_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CRITICALITY_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    SERVICE_HOURS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    subsystem_id: str
    code: str
    name: str
    name_en: str
    category: str
    criticality: Criticality
    team: str
    vendor: str
    service_hours: str
    active: bool
    def __init__(self, subsystem_id: _Optional[str] = ..., code: _Optional[str] = ..., name: _Optional[str] = ..., name_en: _Optional[str] = ..., category: _Optional[str] = ..., criticality: _Optional[_Union[Criticality, str]] = ..., team: _Optional[str] = ..., vendor: _Optional[str] = ..., service_hours: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class SlaStatus(_message.Message):
    __slots__ = ("response_due", "responded_at", "response_breached", "resolution_due", "resolution_elapsed_seconds", "resolution_target_seconds", "resolution_breached", "clock_stopped", "paused_by", "escalation_level", "urgency_seconds")
    RESPONSE_DUE_FIELD_NUMBER: _ClassVar[int]
    RESPONDED_AT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BREACHED_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_DUE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_TARGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_BREACHED_FIELD_NUMBER: _ClassVar[int]
    CLOCK_STOPPED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    URGENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    response_due: str
    responded_at: str
    response_breached: bool
    resolution_due: str
    resolution_elapsed_seconds: float
    resolution_target_seconds: float
    resolution_breached: bool
    clock_stopped: bool
    paused_by: PauseSide
    escalation_level: int
    urgency_seconds: float
    def __init__(self, response_due: _Optional[str] = ..., responded_at: _Optional[str] = ..., response_breached: _Optional[bool] = ..., resolution_due: _Optional[str] = ..., resolution_elapsed_seconds: _Optional[float] = ..., resolution_target_seconds: _Optional[float] = ..., resolution_breached: _Optional[bool] = ..., clock_stopped: _Optional[bool] = ..., paused_by: _Optional[_Union[PauseSide, str]] = ..., escalation_level: _Optional[int] = ..., urgency_seconds: _Optional[float] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "number", "kind", "subsystem_id", "subsystem_code", "title", "description", "impact", "urgency", "priority", "major_incident", "status", "source", "requester_id", "reported_by_id", "assignee_id", "team", "created_at", "updated_at", "resolved_at", "closed_at", "alert_fingerprint", "sla", "worklog_minutes", "paused_by", "resolution_note")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAJOR_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    ALERT_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    WORKLOG_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_NOTE_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    number: str
    kind: TicketKind
    subsystem_id: str
    subsystem_code: str
    title: str
    description: str
    impact: Level
    urgency: Level
    priority: Priority
    major_incident: bool
    status: TicketStatus
    source: TicketSource
    requester_id: str
    reported_by_id: str
    assignee_id: str
    team: str
    created_at: str
    updated_at: str
    resolved_at: str
    closed_at: str
    alert_fingerprint: str
    sla: SlaStatus
    worklog_minutes: int
    paused_by: PauseSide
    resolution_note: str
    def __init__(self, ticket_id: _Optional[str] = ..., number: _Optional[str] = ..., kind: _Optional[_Union[TicketKind, str]] = ..., subsystem_id: _Optional[str] = ..., subsystem_code: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., impact: _Optional[_Union[Level, str]] = ..., urgency: _Optional[_Union[Level, str]] = ..., priority: _Optional[_Union[Priority, str]] = ..., major_incident: _Optional[bool] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., source: _Optional[_Union[TicketSource, str]] = ..., requester_id: _Optional[str] = ..., reported_by_id: _Optional[str] = ..., assignee_id: _Optional[str] = ..., team: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., resolved_at: _Optional[str] = ..., closed_at: _Optional[str] = ..., alert_fingerprint: _Optional[str] = ..., sla: _Optional[_Union[SlaStatus, _Mapping]] = ..., worklog_minutes: _Optional[int] = ..., paused_by: _Optional[_Union[PauseSide, str]] = ..., resolution_note: _Optional[str] = ...) -> None: ...

class Comment(_message.Message):
    __slots__ = ("comment_id", "author_id", "body", "created_at")
    COMMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    comment_id: str
    author_id: str
    body: str
    created_at: str
    def __init__(self, comment_id: _Optional[str] = ..., author_id: _Optional[str] = ..., body: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class Worklog(_message.Message):
    __slots__ = ("worklog_id", "ticket_id", "engineer_id", "grade", "activity", "started_at", "minutes", "note", "billable", "created_at")
    WORKLOG_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINEER_ID_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    worklog_id: str
    ticket_id: str
    engineer_id: str
    grade: str
    activity: str
    started_at: str
    minutes: int
    note: str
    billable: bool
    created_at: str
    def __init__(self, worklog_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., engineer_id: _Optional[str] = ..., grade: _Optional[str] = ..., activity: _Optional[str] = ..., started_at: _Optional[str] = ..., minutes: _Optional[int] = ..., note: _Optional[str] = ..., billable: _Optional[bool] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListSubsystemsRequest(_message.Message):
    __slots__ = ("include_inactive",)
    INCLUDE_INACTIVE_FIELD_NUMBER: _ClassVar[int]
    include_inactive: bool
    def __init__(self, include_inactive: _Optional[bool] = ...) -> None: ...

class ListSubsystemsResponse(_message.Message):
    __slots__ = ("subsystems",)
    SUBSYSTEMS_FIELD_NUMBER: _ClassVar[int]
    subsystems: _containers.RepeatedCompositeFieldContainer[Subsystem]
    def __init__(self, subsystems: _Optional[_Iterable[_Union[Subsystem, _Mapping]]] = ...) -> None: ...

class PutSubsystemRequest(_message.Message):
    __slots__ = ("subsystem", "idempotency_key")
    SUBSYSTEM_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    subsystem: Subsystem
    idempotency_key: str
    def __init__(self, subsystem: _Optional[_Union[Subsystem, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class PutSubsystemResponse(_message.Message):
    __slots__ = ("subsystem",)
    SUBSYSTEM_FIELD_NUMBER: _ClassVar[int]
    subsystem: Subsystem
    def __init__(self, subsystem: _Optional[_Union[Subsystem, _Mapping]] = ...) -> None: ...

class OpenTicketRequest(_message.Message):
    __slots__ = ("kind", "subsystem_code", "title", "description", "impact", "urgency", "major_incident", "on_behalf_of", "idempotency_key")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    MAJOR_INCIDENT_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    kind: TicketKind
    subsystem_code: str
    title: str
    description: str
    impact: Level
    urgency: Level
    major_incident: bool
    on_behalf_of: str
    idempotency_key: str
    def __init__(self, kind: _Optional[_Union[TicketKind, str]] = ..., subsystem_code: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., impact: _Optional[_Union[Level, str]] = ..., urgency: _Optional[_Union[Level, str]] = ..., major_incident: _Optional[bool] = ..., on_behalf_of: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class OpenTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class GetTicketResponse(_message.Message):
    __slots__ = ("ticket", "comments", "worklogs", "history")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    WORKLOGS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    comments: _containers.RepeatedCompositeFieldContainer[Comment]
    worklogs: _containers.RepeatedCompositeFieldContainer[Worklog]
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ..., comments: _Optional[_Iterable[_Union[Comment, _Mapping]]] = ..., worklogs: _Optional[_Iterable[_Union[Worklog, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("at", "kind", "side", "priority", "actor_id", "note")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    at: str
    kind: str
    side: str
    priority: Priority
    actor_id: str
    note: str
    def __init__(self, at: _Optional[str] = ..., kind: _Optional[str] = ..., side: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., actor_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("view", "open_only", "subsystem_code", "limit")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_CODE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    view: TicketView
    open_only: bool
    subsystem_code: str
    limit: int
    def __init__(self, view: _Optional[_Union[TicketView, str]] = ..., open_only: _Optional[bool] = ..., subsystem_code: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("tickets",)
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[Ticket]
    def __init__(self, tickets: _Optional[_Iterable[_Union[Ticket, _Mapping]]] = ...) -> None: ...

class ChangeTicketRequest(_message.Message):
    __slots__ = ("ticket_id", "action", "assignee_id", "team", "pause_side", "note", "idempotency_key")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    PAUSE_SIDE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    action: TicketAction
    assignee_id: str
    team: str
    pause_side: PauseSide
    note: str
    idempotency_key: str
    def __init__(self, ticket_id: _Optional[str] = ..., action: _Optional[_Union[TicketAction, str]] = ..., assignee_id: _Optional[str] = ..., team: _Optional[str] = ..., pause_side: _Optional[_Union[PauseSide, str]] = ..., note: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ChangeTicketResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ...) -> None: ...

class AddCommentRequest(_message.Message):
    __slots__ = ("ticket_id", "body", "idempotency_key")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    body: str
    idempotency_key: str
    def __init__(self, ticket_id: _Optional[str] = ..., body: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class AddCommentResponse(_message.Message):
    __slots__ = ("comment",)
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    comment: Comment
    def __init__(self, comment: _Optional[_Union[Comment, _Mapping]] = ...) -> None: ...

class RecordWorklogRequest(_message.Message):
    __slots__ = ("ticket_id", "grade", "activity", "started_at", "minutes", "note", "idempotency_key")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    grade: str
    activity: str
    started_at: str
    minutes: int
    note: str
    idempotency_key: str
    def __init__(self, ticket_id: _Optional[str] = ..., grade: _Optional[str] = ..., activity: _Optional[str] = ..., started_at: _Optional[str] = ..., minutes: _Optional[int] = ..., note: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class RecordWorklogResponse(_message.Message):
    __slots__ = ("worklog",)
    WORKLOG_FIELD_NUMBER: _ClassVar[int]
    worklog: Worklog
    def __init__(self, worklog: _Optional[_Union[Worklog, _Mapping]] = ...) -> None: ...

class ListWorklogsRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class ListWorklogsResponse(_message.Message):
    __slots__ = ("worklogs",)
    WORKLOGS_FIELD_NUMBER: _ClassVar[int]
    worklogs: _containers.RepeatedCompositeFieldContainer[Worklog]
    def __init__(self, worklogs: _Optional[_Iterable[_Union[Worklog, _Mapping]]] = ...) -> None: ...

class ReceiveAlertsRequest(_message.Message):
    __slots__ = ("alertmanager_payload",)
    ALERTMANAGER_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    alertmanager_payload: str
    def __init__(self, alertmanager_payload: _Optional[str] = ...) -> None: ...

class ReceiveAlertsResponse(_message.Message):
    __slots__ = ("opened", "updated", "resolved", "ticket_ids")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    TICKET_IDS_FIELD_NUMBER: _ClassVar[int]
    opened: int
    updated: int
    resolved: int
    ticket_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, opened: _Optional[int] = ..., updated: _Optional[int] = ..., resolved: _Optional[int] = ..., ticket_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CalendarDay(_message.Message):
    __slots__ = ("day", "working", "note")
    DAY_FIELD_NUMBER: _ClassVar[int]
    WORKING_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    day: str
    working: bool
    note: str
    def __init__(self, day: _Optional[str] = ..., working: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class ListCalendarDaysRequest(_message.Message):
    __slots__ = ("year",)
    YEAR_FIELD_NUMBER: _ClassVar[int]
    year: int
    def __init__(self, year: _Optional[int] = ...) -> None: ...

class ListCalendarDaysResponse(_message.Message):
    __slots__ = ("days", "statutory_data", "statutory_data_until")
    DAYS_FIELD_NUMBER: _ClassVar[int]
    STATUTORY_DATA_FIELD_NUMBER: _ClassVar[int]
    STATUTORY_DATA_UNTIL_FIELD_NUMBER: _ClassVar[int]
    days: _containers.RepeatedCompositeFieldContainer[CalendarDay]
    statutory_data: bool
    statutory_data_until: str
    def __init__(self, days: _Optional[_Iterable[_Union[CalendarDay, _Mapping]]] = ..., statutory_data: _Optional[bool] = ..., statutory_data_until: _Optional[str] = ...) -> None: ...

class PutCalendarDayRequest(_message.Message):
    __slots__ = ("day", "remove")
    DAY_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    day: CalendarDay
    remove: bool
    def __init__(self, day: _Optional[_Union[CalendarDay, _Mapping]] = ..., remove: _Optional[bool] = ...) -> None: ...

class PutCalendarDayResponse(_message.Message):
    __slots__ = ("day",)
    DAY_FIELD_NUMBER: _ClassVar[int]
    day: CalendarDay
    def __init__(self, day: _Optional[_Union[CalendarDay, _Mapping]] = ...) -> None: ...
