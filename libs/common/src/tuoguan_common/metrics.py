"""Every custom metric of the platform, registered here and nowhere else.

Names follow ``tuoguan_<service>_<thing>_<unit>``; the RED metrics shared by
every process carry the service as a label. Labels never hold personal data:
methods, event types, outcomes and reasons only.
"""
from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

from .config import DEFAULT_LISTEN_HOST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# RED: gRPC methods (api processes).
GRPC_HANDLED = Counter(
    "tuoguan_grpc_server_handled_total", "gRPC calls handled, by method and status code",
    ["service", "method", "code"],
)
GRPC_DURATION = Histogram(
    "tuoguan_grpc_server_handling_seconds", "gRPC call duration", ["service", "method"], buckets=LATENCY_BUCKETS,
)
# Read from gRPC core's channelz when scraped (grpc_server.core_queue_of).
GRPC_CALLS_WAITING = Gauge(
    "tuoguan_grpc_server_calls_waiting",
    "gRPC calls the api has received that wait inside gRPC core for the server to take them (no handler yet)",
    ["service"],
)
TOKEN_REVOCATIONS = Gauge(
    "tuoguan_token_revocations", "Revoked, unexpired tokens the api refuses (identity's list as last read)", ["service"],
)
TOKEN_WITHDRAWN_ACCOUNTS = Gauge(
    "tuoguan_token_withdrawn_accounts",
    "Accounts whose older tokens the api refuses (a grade changed, a password reset; identity's list as last read)",
    ["service"],
)
TOKEN_REVOCATIONS_REFRESHED = Gauge(
    "tuoguan_token_revocations_refreshed_timestamp_seconds", "When the api last read identity's revocation list",
    ["service"],
)
ADMISSION_REFUSE_PROBABILITY = Gauge(
    "tuoguan_admission_refuse_probability",
    "Share of new calls an api turns away while the calls it admitted wait past their latency target, by method",
    ["method"],
)
# RED: event handlers (worker processes).
EVENTS_HANDLED = Counter(
    "tuoguan_events_handled_total",
    "Events handled, by handler and outcome (ok, duplicate, malformed, dead_lettered, parked, error)",
    ["service", "event_type", "handler", "outcome"],
)
# Connections a worker's event handler opened to publish its failed events
# again (or park them): one, kept while it works; each break opens another.
EVENT_REPUBLISH_CONNECTIONS = Counter(
    "tuoguan_event_republish_connections_total",
    "Connections an event handler opened to the broker to publish failed events again",
    ["service", "handler"],
)
EVENT_DURATION = Histogram(
    "tuoguan_event_handling_seconds", "Event handler duration", ["service", "handler"], buckets=LATENCY_BUCKETS,
)
# RED: HTTP routes (gateway).
HTTP_REQUESTS = Counter(
    "tuoguan_gateway_http_requests_total", "HTTP requests, by route template and status", ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tuoguan_gateway_http_request_seconds", "HTTP request duration", ["route", "method"], buckets=LATENCY_BUCKETS,
)
# Against GATEWAY_LIMIT_CONCURRENCY: past it, requests are refused 503 (counted above, route "unmatched").
GATEWAY_OPEN_CONNECTIONS = Gauge(
    "tuoguan_gateway_open_connections", "HTTP connections open to this gateway process, idle keep-alive ones included",
)
# Connections the gateway closes on its own deadlines (limits.py): each held a
# place in GATEWAY_LIMIT_CONCURRENCY until then. A rising rate is a client (or an
# attack) that connects and then stalls: no headers, or no reading of its answer.
GATEWAY_CONNECTIONS_CLOSED = Counter(
    "tuoguan_gateway_connections_closed_total",
    "Connections the gateway closed itself, by reason (header_timeout: the request's headers did not arrive in "
    "time; write_timeout: the client stopped reading its response)", ["reason"],
)
# The event queues a worker consumes, as the broker counts them (nameko_support.EventQueueWatch).
EVENT_QUEUE_MESSAGES = Gauge(
    "tuoguan_event_queue_messages", "Events waiting in a worker's queue for a handler (ready, not yet delivered)",
    ["service", "queue"],
)
EVENT_QUEUE_CONSUMERS = Gauge(
    "tuoguan_event_queue_consumers", "Consumers attached to a worker's event queue, every replica's",
    ["service", "queue"],
)
# The parking queue of each event handler of a worker (``<queue>.parked``,
# nameko_support.RetryingEventHandler): events that failed their last attempt
# and could not even be dead-lettered, which nobody consumes. 0: none parked.
EVENT_QUEUE_PARKED = Gauge(
    "tuoguan_event_queue_parked_messages",
    "Events parked in a worker's parking queue (<queue>.parked), which nobody applies unless a person does",
    ["service", "queue"],
)
# The outbox relay.
OUTBOX_RELAYED = Counter("tuoguan_outbox_relayed_total", "Events relayed from the outbox to RabbitMQ", ["service"])
OUTBOX_BACKLOG = Gauge("tuoguan_outbox_backlog_events", "Outbox events not yet relayed", ["service"])
OUTBOX_RELAY_ERRORS = Counter("tuoguan_outbox_relay_errors_total", "Failed relay attempts", ["service"])
# Advances every run, idle ones too: a relay stuck inside a run counts
# neither a failure nor a relayed event, and only this stops moving.
OUTBOX_RELAY_LAST_SUCCESS = Gauge(
    "tuoguan_outbox_relay_last_success_timestamp_seconds",
    "When the worker's outbox relay last finished a run (a batch sent or nothing to send); its start until then",
    ["service"],
)
# Worker timers.
TIMER_RUNS = Counter("tuoguan_timer_runs_total", "Timer runs, by timer and outcome", ["service", "timer", "outcome"])
# The retention purge of the tables every service shares (tuoguan_common.retention).
RETENTION_DELETED = Counter(
    "tuoguan_retention_deleted_rows_total",
    "Rows the retention purge deleted from a service's shared tables, by table (outbox, inbox, idempotency_keys)",
    ["service", "table"],
)
# The portal (gateway): its waiting room and its cache of the catalogue and availability.
PORTAL_WAITING_ROOM = Counter(
    "tuoguan_portal_waiting_room_checks_total",
    "Waiting-room checks by outcome (admitted, queued, missed_turn, address_limited, room_unavailable)", ["outcome"],
)
# Set by each check that reads the queue from Redis. A check that cannot read it
# sets NaN (unknown), never leaves the last figure standing; a replica nobody
# checks through keeps its last figure, which the rules and panels weigh by the
# timestamp below (a replica's figure is current only if it read it lately).
PORTAL_WAITING_ROOM_QUEUE = Gauge(
    "tuoguan_portal_waiting_room_queue",
    "Patients waiting for their turn, as this gateway last read it (NaN: its last check could not read Redis)",
)
PORTAL_WAITING_ROOM_CHECKED = Gauge(
    "tuoguan_portal_waiting_room_checked_timestamp_seconds",
    "When this gateway last read the waiting room's queue from Redis (0: never)",
)
# A ticket presented by another account (or portal session) than the one that took it: counted as
# no ticket, the caller sent to the back of the queue. By surface (portal, api) only: nothing of whose.
WAITING_ROOM_FOREIGN_TICKETS = Counter(
    "tuoguan_gateway_waiting_room_foreign_tickets_total",
    "Waiting-room tickets presented by another account or session than their owner's, by surface (portal, api)",
    ["surface"],
)
# New waiting-room tickets counted per client address (against junk tickets pushing patients back), by
# surface (portal, api) and outcome: counted, refused (the address had its limit this minute: no ticket),
# not_counted (no public address: behind proxies not trusted, every client looks private). Never the address.
WAITING_ROOM_NEW_TICKETS = Counter(
    "tuoguan_gateway_waiting_room_new_tickets_total",
    "New waiting-room tickets per client address, by surface (portal, api) and outcome "
    "(counted, refused: the address had its limit in the minute, not_counted: the client's address is not a public one)",
    ["surface", "outcome"],
)
# The JSON API's holds through the waiting room (the portal's pages are counted in the checks above, which
# count the API's too): admitted, queued (429), address_limited (429: the address's new tickets), room_unavailable
# (let through without Redis).
API_WAITING_ROOM = Counter(
    "tuoguan_gateway_api_waiting_room_total",
    "The JSON API's holds through the waiting room by outcome (admitted, queued, address_limited, room_unavailable)",
    ["outcome"],
)
GATEWAY_SIGN_IN_GUARD = Counter(
    "tuoguan_gateway_sign_in_guard_total",
    "The gateway's count of failed sign-ins per client address, by outcome "
    "(failure_counted, refused, unavailable, not_counted: the client's address is not a public one)",
    ["outcome"],
)
GATEWAY_SEND_GUARD = Counter(
    "tuoguan_gateway_send_guard_total",
    "The gateway's count of text-message codes asked for per client address (SMS pumping), by outcome "
    "(counted: identity accepted the request, a code may have gone out; refused; unavailable; "
    "not_counted: the client's address is not a public one; hourly_limit: refused without asking identity, "
    "the platform's texts for the hour being spent)",
    ["outcome"],
)
PORTAL_CACHE_LOOKUPS = Counter(
    "tuoguan_portal_cache_lookups_total", "Portal cache lookups by cache (catalogue, availability) and outcome",
    ["cache", "outcome"],
)

# Identity.
IDENTITY_SIGN_INS = Counter("tuoguan_identity_sign_ins_total", "Sign-in attempts by outcome", ["outcome"])
IDENTITY_SIGN_OUTS = Counter("tuoguan_identity_sign_outs_total", "Sign-in tokens revoked by their holder signing out")
IDENTITY_SIGN_UPS = Counter("tuoguan_identity_sign_ups_total", "Patient accounts created")
IDENTITY_SMS_SENDS = Counter(
    "tuoguan_identity_sms_sends_total",
    "Texts posted to the SMS gateway, by template (password_reset, sign_up, session_suspended: one the "
    "provider refuses alone shows here) and outcome (sent, rejected, timeout, unreachable)", ["template", "outcome"],
)
IDENTITY_PATIENT_NOTICES = Counter(
    "tuoguan_identity_patient_notices_total",
    "Texts to patients about their bookings (identity's worker), by kind (session_suspended) and outcome: "
    "sent; retrying (a send failed, tried again later); given_up (its last attempt failed: nobody told the "
    "patient); no_phone (no patient account with a phone number for the booking's patient); no_details (an "
    "event without its bookings, published before they were added)", ["kind", "outcome"],
)
IDENTITY_PATIENT_NOTICES_PENDING = Gauge(
    "tuoguan_identity_patient_notices_pending",
    "Texts to patients waiting to be sent (a first send or a retry), as the worker last counted them",
)
IDENTITY_SMS_HOURLY_LIMIT_REFUSALS = Counter(
    "tuoguan_identity_sms_hourly_limit_refusals_total",
    "Code requests refused because this clock hour's texts (IDENTITY_SMS_TEXTS_PER_HOUR, across identity's "
    "replicas) are spent",
)
IDENTITY_SMS_TEXTS_PER_HOUR_LIMIT = Gauge(
    "tuoguan_identity_sms_texts_per_hour_limit",
    "Texts identity may send in a clock hour (IDENTITY_SMS_TEXTS_PER_HOUR; 0: no limit)",
)

# Registration.
REGISTRATION_HOLDS = Counter(
    "tuoguan_registration_holds_total", "Hold attempts by outcome (held, full, rule reason)", ["outcome"],
)
REGISTRATION_BOOKINGS_CONFIRMED = Counter(
    "tuoguan_registration_bookings_confirmed_total", "Bookings confirmed after payment",
)
REGISTRATION_BOOKINGS_CANCELLED = Counter(
    "tuoguan_registration_bookings_cancelled_total", "Bookings cancelled, by reason", ["reason"],
)
REGISTRATION_HOLDS_RELEASED = Counter(
    "tuoguan_registration_holds_released_total", "Holds returned to stock, by reason (expired, payment_failed)",
    ["reason"],
)
REGISTRATION_SLOTS_REMAINING = Gauge(
    "tuoguan_registration_slots_remaining", "Remaining capacity over released future slots",
)
REGISTRATION_SLOTS_PUBLISHED = Counter("tuoguan_registration_slots_published_total", "Slots published")
REGISTRATION_HOLDS_PER_TRANSACTION = Histogram(
    "tuoguan_registration_holds_per_transaction", "Holds written together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)

# Billing.
BILLING_PAYMENTS = Counter(
    "tuoguan_billing_payments_total",
    "Payments by final or interim outcome (pending, captured, failed, unknown), charges the provider made "
    "after billing had failed the payment (charged_after_failure) and refunds that failed, retried next run "
    "(refund_failed)",
    ["outcome"],
)
BILLING_PAYMENTS_PER_TRANSACTION = Histogram(
    "tuoguan_billing_payments_per_transaction",
    "Payments the api opened together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BILLING_BOOKINGS_LEARNED = Counter(
    "tuoguan_billing_bookings_learned_total",
    "How billing learned the booking a payment is for: from the hold's payment ticket, or by asking registration",
    ["source"],
)
BILLING_CAPTURED_FEN = Counter("tuoguan_billing_captured_fen_total", "Registration fees captured, in fen")
BILLING_REFUNDS = Counter("tuoguan_billing_refunds_total", "Refunds issued")
BILLING_REFUNDED_FEN = Counter("tuoguan_billing_refunded_fen_total", "Registration fees refunded, in fen")
BILLING_RECONCILED = Counter(
    "tuoguan_billing_reconciled_payments_total", "Payments settled by reconciliation, by outcome", ["outcome"],
)
BILLING_UNKNOWN_PAYMENTS = Gauge(
    "tuoguan_billing_unknown_payments", "Payments the provider left unanswered, waiting for reconciliation",
)
BILLING_PROVIDER_CALL_SECONDS = Histogram(
    "tuoguan_billing_provider_call_seconds", "Calls to the payment provider, by operation and outcome (ok, error)",
    ["operation", "outcome"], buckets=LATENCY_BUCKETS,
)

# Ticketing.
TICKETING_TICKETS_OPENED = Counter(
    "tuoguan_ticketing_tickets_opened_total", "Tickets opened, by source (portal, staff, alert, device) and priority",
    ["source", "priority"],
)
TICKETING_ALERTS = Counter(
    "tuoguan_ticketing_alert_notifications_total",
    "Alert and device-alarm notifications, by outcome (opened, updated, resolved, ignored, unknown_subsystem: "
    "no ticket, the catalogue has no such active subsystem)", ["outcome"],
)
TICKETING_SLA_BREACHES = Counter(
    "tuoguan_ticketing_sla_breaches_total", "SLA targets breached, by target (response, resolution)", ["target"],
)
TICKETING_ESCALATIONS = Counter(
    "tuoguan_ticketing_escalations_total", "Escalations, by level (1 warned, 2 breached, 3 well past)", ["level"],
)
TICKETING_TICKETS_CLOSED = Counter(
    "tuoguan_ticketing_tickets_closed_total", "Tickets closed, by how (confirmed, auto, closed)", ["how"],
)
TICKETING_OPEN_TICKETS = Gauge(
    "tuoguan_ticketing_open_tickets", "Tickets not yet resolved (new, assigned, in progress, pending), by priority",
    ["priority"],
)
TICKETING_RESOLUTION_SECONDS = Histogram(
    "tuoguan_ticketing_resolution_service_seconds",
    "Service time from report to resolution (the SLA clock: pauses on the hospital's or a vendor's side excluded), "
    "by priority", ["priority"],
    buckets=(900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 16 * 3600, 24 * 3600, 40 * 3600, 80 * 3600),
)
TICKETING_CALENDAR_KNOWN_DAYS = Gauge(
    "tuoguan_ticketing_calendar_known_days",
    "Days from today to the end of the last year whose holidays are known (the statutory data, or the "
    "hospital's overrides for that year and each year before it): SLAs past it count every weekday as a working day",
)
TICKETING_WORKLOG_MINUTES = Counter(
    "tuoguan_ticketing_worklog_minutes_total", "Engineers' logged minutes, by grade", ["grade"],
)

_started: set[int] = set()
_lock = threading.Lock()


def serve_metrics(port: int, addr: str = DEFAULT_LISTEN_HOST) -> None:
    """Starts the /metrics endpoint once per port in this process, on ``addr``
    (TUOGUAN_METRICS_HOST; this machine only by default)."""
    with _lock:
        if port in _started:
            return
        start_http_server(port, addr=addr, registry=REGISTRY)
        _started.add(port)
