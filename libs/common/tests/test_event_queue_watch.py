"""A worker's event queues as the broker counts them, against the real
RabbitMQ: waiting events, consumers, and no figure for a queue the broker does
not have or when the broker is out of reach or stops answering."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import kombu
import pytest
from prometheus_client import REGISTRY

from tuoguan_common.nameko_support import EventQueueWatch
from tuoguan_common.testing import SilentProxy, free_port

pytestmark = pytest.mark.integration


def gauge(name: str, service: str, queue: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service, "queue": queue})


def test_waiting_events_and_consumers_of_each_queue(infra):
    service = f"watch-{uuid.uuid4().hex[:6]}"
    waiting, missing = f"evt-test-Waiting--{service}.h", f"evt-test-Missing--{service}.h"
    with kombu.Connection(infra["amqp_uri"]) as conn:
        queue = kombu.Queue(waiting, exchange=kombu.Exchange(service, type="topic", durable=False),
                            routing_key="Waiting", durable=False, auto_delete=False)(conn.default_channel)
        queue.declare()
        try:
            producer = conn.Producer()
            for i in range(3):
                producer.publish({"n": i}, exchange=queue.exchange, routing_key="Waiting")
            watch = EventQueueWatch(service, infra["amqp_uri"], [missing, waiting])

            assert watch.poll() == {waiting: (3, 0)}
            assert gauge("tuoguan_event_queue_messages", service, waiting) == 3
            assert gauge("tuoguan_event_queue_consumers", service, waiting) == 0
            assert gauge("tuoguan_event_queue_messages", service, missing) is None

            with kombu.Connection(infra["amqp_uri"]) as reader, reader.Consumer(
                    kombu.Queue(waiting, durable=False, auto_delete=False, no_declare=True),
                    prefetch_count=1, callbacks=[lambda body, message: None]):
                reader.drain_events(timeout=5)
                # One event delivered (unacknowledged) to the consumer: two still wait.
                assert watch.poll() == {waiting: (2, 1)}
        finally:
            queue.delete()
    assert watch.poll() == {}
    assert gauge("tuoguan_event_queue_messages", service, waiting) is None, "no stale figure once the queue is gone"


def test_parked_events_of_each_parking_queue_nothing_parked_reading_0(infra):
    """Parked events (RetryingEventHandler's ``<queue>.parked``) were counted
    nowhere: nobody saw them unless they looked on the broker."""
    service = f"watch-{uuid.uuid4().hex[:6]}"
    parked, unused = f"evt-test-Parked--{service}.h.parked", f"evt-test-Unused--{service}.h.parked"
    with kombu.Connection(infra["amqp_uri"]) as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(parked, durable=True, auto_delete=False)  # as the handler parks
            producer = conn.Producer()
            for i in range(2):
                producer.publish({"n": i}, exchange="", routing_key=parked, delivery_mode=2)
            watch = EventQueueWatch(service, infra["amqp_uri"], [], parked=[parked, unused])

            assert watch.poll() == {parked: (2, 0), unused: (0, 0)}
            assert gauge("tuoguan_event_queue_parked_messages", service, parked) == 2
            # No parking queue yet: declared as the handler would, so it reads 0 (and the broker
            # logs no failed passive declare every poll).
            assert gauge("tuoguan_event_queue_parked_messages", service, unused) == 0
            assert channel.queue_declare(unused, passive=True).message_count == 0

            assert channel.basic_get(parked, no_ack=True) is not None  # an operator drops one
            watch.poll()
            assert gauge("tuoguan_event_queue_parked_messages", service, parked) == 1
        finally:
            channel.queue_delete(parked)
            channel.queue_delete(unused)


def test_a_broker_out_of_reach_leaves_no_figures():
    service = f"watch-{uuid.uuid4().hex[:6]}"
    watch = EventQueueWatch(service, f"amqp://guest:guest@127.0.0.1:{free_port()}//", ["evt-a--b.c"],
                            parked=["evt-a--b.c.parked"])
    assert watch.poll() == {}
    assert gauge("tuoguan_event_queue_messages", service, "evt-a--b.c") is None
    assert gauge("tuoguan_event_queue_parked_messages", service, "evt-a--b.c.parked") is None


def test_a_broker_that_refuses_the_password_leaves_no_figures_and_raises_nothing(infra):
    """A rotated password: the worker's own connection stays up, new ones are refused."""
    service = f"watch-{uuid.uuid4().hex[:6]}"
    refused = infra["amqp_uri"].replace("guest:guest@", "guest:not-the-password@")
    assert refused != infra["amqp_uri"]
    watch = EventQueueWatch(service, refused, ["evt-a--b.c"])
    assert watch.poll() == {}
    assert gauge("tuoguan_event_queue_consumers", service, "evt-a--b.c") is None


def test_a_broker_that_stops_answering_leaves_no_figures_in_time(infra, green_driver):
    """Under eventlet, as in the worker: a poll waited forever on a broker that
    kept the connection open but stopped answering, its last figures standing."""
    service = f"watch-{uuid.uuid4().hex[:6]}"
    waiting = f"evt-test-Waiting--{service}.h"
    with kombu.Connection(infra["amqp_uri"]) as conn:
        queue = kombu.Queue(waiting, exchange=kombu.Exchange(service, type="topic", durable=False),
                            routing_key="Waiting", durable=False, auto_delete=False)(conn.default_channel)
        queue.declare()
        try:
            conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="Waiting")
            with SilentProxy(urlsplit(infra["amqp_uri"]).port or 5672) as broker:
                watch = green_driver(service=service, database_url="postgresql://unused", queues=[waiting],
                                     amqp_uri=broker.url(infra["amqp_uri"]))
                assert watch.ask("watch") == {"connected": True}
                answered = watch.ask("go")
                assert answered["seen"] == {waiting: [1, 0]} and answered["figure"] == 1

                assert watch.ask("watch") == {"connected": True}
                broker.frozen.set()
                silent = watch.ask("go", timeout=30)
                assert silent["seen"] == {} and silent["figure"] is None, silent
                assert silent["seconds"] < 9, silent  # the watch waits 5 s for an answer
        finally:
            queue.delete()

