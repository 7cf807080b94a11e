"""A virtual host of one's own on the local RabbitMQ: the same queue name in
two of them is two queues, and the host is gone once deleted."""
from __future__ import annotations

import uuid

import amqp
import kombu
import pytest

from tuoguan_common.vhosts import private_vhost

pytestmark = pytest.mark.integration


def depth(uri: str, queue: str) -> int:
    with kombu.Connection(uri) as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=True).message_count


def test_the_same_queue_name_in_two_private_hosts_is_two_queues(infra):
    first, drop_first = private_vhost(infra["amqp_uri"], "vhost-test")
    second, drop_second = private_vhost(infra["amqp_uri"], "vhost-test")
    try:
        assert len({first, second, infra["amqp_uri"]}) == 3
        queue = f"evt-test-Isolated--{uuid.uuid4().hex[:6]}.h"
        for uri in (first, second):
            with kombu.Connection(uri) as conn:
                conn.default_channel.queue_declare(queue=queue, durable=False, auto_delete=False)
        with kombu.Connection(first) as conn:
            conn.Producer().publish({"n": 1}, routing_key=queue)
        assert (depth(first, queue), depth(second, queue)) == (1, 0)
    finally:
        drop_first()
        drop_second()
    with pytest.raises(amqp.exceptions.NotAllowed, match="not found"), kombu.Connection(first, connect_timeout=3) as conn:
        conn.connect()


def test_a_broker_elsewhere_is_left_as_it_is():
    uri = "amqp://tuoguan:secret@rabbitmq.hospital.internal:5672/tuoguan"
    assert private_vhost(uri, "x")[0] == uri
