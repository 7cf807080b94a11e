"""The worker's queues exist from deploy time (migrate), so an event published
before the worker's first start waits for it instead of being dropped."""
from __future__ import annotations

import json
import time

import kombu
import pytest
from tuoguan.billing.v1 import events_pb2 as billing_events

from registration.worker import RegistrationWorker
from tuoguan_common.testing import publish_event
from tuoguan_common.topology import declare_event_queues, event_subscriptions

pytestmark = pytest.mark.integration


def test_every_handler_queue_is_named_as_nameko_names_it():
    assert ("billing", "PaymentCaptured", "evt-billing-PaymentCaptured--registration.on_payment_captured") \
        in event_subscriptions(RegistrationWorker)


def test_an_event_published_before_the_worker_starts_waits_in_its_queue(infra):
    subscriptions = event_subscriptions(RegistrationWorker)
    assert sorted(declare_event_queues("registration", infra["amqp_uri"])) == sorted(q for *_, q in subscriptions)
    queue = next(q for source, event, q in subscriptions if (source, event) == ("billing", "PaymentCaptured"))
    with kombu.Connection(infra["amqp_uri"]) as conn:
        channel = conn.channel()
        channel.queue_purge(queue)
        event_id = publish_event(infra["amqp_uri"], "billing", billing_events.PaymentCaptured(payment_id="p-early"))
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = channel.basic_get(queue, no_ack=True)
            time.sleep(0.02)
    assert message is not None
    assert json.loads(message.body)["event_id"] == event_id
