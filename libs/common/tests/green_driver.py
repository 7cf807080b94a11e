"""The outbox relay and the queue watch in a process eventlet has patched, as
in a worker, driven line by line by a test (the test process is never
patched). Started as ``python green_driver.py '<json settings>'``; reads one
command a line on stdin, answers each with one JSON line on stdout:

* ``run``: one ``relay_once``: ``{"sent": n}`` or ``{"raised": "<type>"}``;
* ``relayer-start`` / ``relayer-stop``: the worker's ``OutboxRelayer``
  around the same settings (stop answers how long it took);
* ``watch``: one ``EventQueueWatch.poll`` of ``queues``, which answers
  ``{"connected": true}`` once it has connected and waits for a line before
  it reads them; then ``{"seen": ..., "figure": <the first queue's gauge>}``.

Every answer carries ``seconds`` (how long the command took) and
``last_success`` (the relay's gauge). Settings: ``service``, ``database_url``,
``amqp_uri``, ``queues`` and ``relay``, attributes of ``OutboxRelay`` to set
(its time limits).
"""
import eventlet

eventlet.monkey_patch()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

os.environ["PSYCOPG_WAIT_FUNC"] = "wait_select"

from eventlet.hubs import trampoline  # noqa: E402
from nameko import config  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

from tuoguan_common import nameko_support, outbox  # noqa: E402

settings = json.loads(sys.argv[1])
for name, value in settings.get("relay", {}).items():
    setattr(outbox.OutboxRelay, name, value)
service = settings["service"]
relay = outbox.OutboxRelay(service, settings["database_url"], settings["amqp_uri"])
relayer = None


def answer(started: float, **fields) -> None:
    fields["seconds"] = round(time.monotonic() - started, 3)
    fields["last_success"] = REGISTRY.get_sample_value(
        "tuoguan_outbox_relay_last_success_timestamp_seconds", {"service": service})
    print(json.dumps(fields), flush=True)


_unread = b""


def read_line() -> str:
    """The next line of stdin, waiting the green way: the relayer's greenthread runs meanwhile."""
    global _unread
    while b"\n" not in _unread:
        trampoline(0, read=True)
        chunk = os.read(0, 4096)
        if not chunk:
            return ""
        _unread += chunk
    line, _unread = _unread.split(b"\n", 1)
    return line.decode()


polling: list[bool] = []


def paused_queue_state(connection, queue, _real=nameko_support.queue_state):
    if not polling:
        polling.append(True)
        connection.connect()  # no-op when the watch has connected already
        print(json.dumps({"connected": True}), flush=True)
        read_line()
    return _real(connection, queue)


nameko_support.queue_state = paused_queue_state

while command := read_line().strip():
    started = time.monotonic()
    if command == "run":
        try:
            answer(started, sent=relay.relay_once())
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            answer(started, raised=type(exc).__name__)
    elif command == "relayer-start":
        config.update({"DATABASE_URL": settings["database_url"], "AMQP_URI": settings["amqp_uri"]})
        relayer = nameko_support.OutboxRelayer(service)
        relayer.start()
        answer(started, relaying=True)
    elif command == "relayer-stop":
        relayer.stop()
        answer(started, stopped=True)
    elif command == "watch":
        polling.clear()
        watch = nameko_support.EventQueueWatch(service, settings["amqp_uri"], settings["queues"])
        seen = watch.poll()
        answer(started, seen=seen, figure=REGISTRY.get_sample_value(
            "tuoguan_event_queue_messages", {"service": service, "queue": settings["queues"][0]}))
    elif command == "quit":
        break
relay.close()
