"""A worker for the shared library's tests of failing events, run as its own
process like the services' workers (``python retry_worker.py``). One handler,
``retrytest.on_captured``, of ``$RETRY_TEST_SOURCE``'s PaymentCaptured,
through ``handle_event``; the event's payment id says what its effect does:

* ``oversized:<n>``: writes the booking id, thousands of random characters,
  to an indexed column: the server refuses it every time (54000);
* ``locked:<n>``: takes the row the test holds, without waiting (55P03);
* ``raises:<n>``: the handler raises before ``handle_event``, every time;
* anything else: writes the payment id to ``effects``; while the test's
  ``switch`` says read-only, in a read-only transaction, refused (25006) as
  on a connection to a primary a failover demoted (while another connection,
  the dead letter's, may reach the new one).

The test's database has ``outbox.DDL``'s tables and the test's own
(``test_event_retries.SCHEMA``; never imported here: this module patches).
"""
from tuoguan_common import worker_main  # first: patches the standard library for eventlet

import os  # noqa: E402

from tuoguan.billing.v1 import events_pb2  # noqa: E402
from tuoguan_common.nameko_support import Observability, WorkerStore, event_handler, handle_event  # noqa: E402

def apply(cur, event) -> None:
    kind = event.payment_id.split(":")[0]
    if kind == "oversized":
        cur.execute("INSERT INTO effects (payment_id, note) VALUES (%s, %s)", (event.payment_id, event.booking_id))
    elif kind == "locked":
        cur.execute("SELECT id FROM gate WHERE id = 1 FOR UPDATE NOWAIT")
    else:
        cur.execute("SELECT read_only FROM switch")
        if cur.fetchone()["read_only"]:
            cur.execute("SET transaction_read_only = on")
        cur.execute("INSERT INTO effects (payment_id) VALUES (%s)", (event.payment_id,))


class RetryTestWorker:
    name = "retrytest"

    database = WorkerStore(lambda database: database, "retrytest")
    observability = Observability("retrytest")

    @event_handler(os.environ.get("RETRY_TEST_SOURCE", "retrysource"), "PaymentCaptured", requeue_on_error=True)
    def on_captured(self, payload):
        if payload.get("payment_id", "").startswith("raises:"):
            raise RuntimeError("a handler failing outside handle_event")
        return handle_event(self.database, payload, events_pb2.PaymentCaptured, "on_captured", apply)


if __name__ == "__main__":
    worker_main.run(RetryTestWorker, "retrytest", int(os.environ["RETRYTEST_WORKER_METRICS_PORT"]))
