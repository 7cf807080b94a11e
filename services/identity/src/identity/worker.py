"""Identity's worker: tells patients by text message that the session they
booked was suspended (registration's ``SessionSuspended``), once per
cancelled booking, and tries again the texts the SMS gateway did not take.
``tuoguan-worker identity`` runs it.

Identity keeps the patients' phone numbers, so the texts go from here, through
the same notification port as the codes (``IDENTITY_SMS_URL``; with
``IDENTITY_RESET_CODES_TO_LOG=true`` and no gateway, to this worker's log with
the phone masked). The purge of the outbox, inbox and idempotency keys stays
with identity's api (``api_main.run(purge_retention=True)``).
"""
from __future__ import annotations

import logging
import os

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from tuoguan.registration.v1 import events_pb2 as registration_events
from tuoguan_common import metrics
from tuoguan_common.config import PORTS
from tuoguan_common.nameko_support import Observability, WorkerStore, event_handler, handle_event
from tuoguan_common.outbox import utcnow

from . import sms
from .config import IdentityConfig
from .notifications import choose_notifier
from .patient_notices import NoticeSender, NoticeStore, count_from_zero

log = logging.getLogger(__name__)

# Timer intervals are fixed when the class is defined, so the settings are read at import.
CONFIG = IdentityConfig.from_env()
SWEEP_BATCH = 100


class Notices(DependencyProvider):
    """The notice sender over the worker's store, its notifier chosen once at
    container start (after logging is set up), as the api chooses its own."""

    def setup(self):
        count_from_zero()
        sms.count_from_zero()
        self.notifier = choose_notifier(CONFIG, "texts to patients")

    def get_dependency(self, worker_ctx):
        return self

    def sender(self, store: NoticeStore) -> NoticeSender:
        return NoticeSender(store, self.notifier, CONFIG.notices)


class IdentityWorker:
    name = "identity"

    store = WorkerStore(NoticeStore, "identity")
    observability = Observability("identity")
    notices = Notices()

    @event_handler("registration", "SessionSuspended", requeue_on_error=True)
    def on_session_suspended(self, payload):
        recorded = []
        details = []

        def apply(cur, event):
            details.append((len(event.bookings), len(event.patient_ids)))
            recorded.extend(self.store.record_suspension(cur, event, utcnow()))

        outcome = handle_event(self.store.db, payload, registration_events.SessionSuspended, "session_suspended",
                               apply)
        if outcome != "ok":  # a duplicate, or put aside: nothing was written
            return outcome
        if details and details[0][0] == 0 and details[0][1] > 0:
            # Published before the event carried its bookings: nobody can be told which visit.
            log.warning("suspension without its bookings: its patients are not texted",
                        extra={"patients": details[0][1]})
            metrics.IDENTITY_PATIENT_NOTICES.labels("session_suspended", "no_details").inc(details[0][1])
        skipped = sum(1 for r in recorded if r.status == "skipped")
        if skipped:
            metrics.IDENTITY_PATIENT_NOTICES.labels("session_suspended", "no_phone").inc(skipped)
            log.warning("suspended bookings whose patient has no phone number here: not texted",
                        extra={"bookings": skipped})
        # Committed: send at once; a send that fails waits for the timer's next try.
        sender = self.notices.sender(self.store)
        for notice in recorded:
            if notice.status == "pending":
                sender.send(notice.booking_id, utcnow())
        return outcome

    @timer(interval=CONFIG.notice_sweep_seconds)
    def send_due_notices(self):
        """Notices whose next try is due (a send that failed, or one the handler did not get to), a batch at a time."""
        sender = self.notices.sender(self.store)
        while True:
            due = self.store.due(utcnow(), SWEEP_BATCH)
            done = [sender.send(booking_id, utcnow()) for booking_id in due]
            # Fewer than a batch: none left; none done: another worker is sending them.
            if len(due) < SWEEP_BATCH or not any(done):
                break
        metrics.IDENTITY_PATIENT_NOTICES_PENDING.set(self.store.pending())

    @timer(interval=3600, eager=True)
    def forget_old_notices(self):
        self.store.forget_done(utcnow())


def main() -> None:
    # worker_main patches the standard library for eventlet when imported: only here, in the worker process.
    from tuoguan_common import worker_main

    port = int(os.environ.get("IDENTITY_WORKER_METRICS_PORT") or PORTS["identity"]["worker_metrics"])
    worker_main.run(IdentityWorker, "identity", port)
