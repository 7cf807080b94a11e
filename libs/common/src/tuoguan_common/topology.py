"""The broker topology a service's worker consumes from, declared ahead of it.

Nameko declares an event handler's queue when the worker starts; until then an
event published to ``<source>.events`` is routed nowhere and dropped. Declaring
every handler's durable queue and binding at deploy time (with the database
migrations) closes that window: events wait in their queue for the worker.
"""
from __future__ import annotations

import importlib
import logging
import warnings

import kombu

from .config import DEFAULT_AMQP_URI, amqp_tls

log = logging.getLogger(__name__)


def event_subscriptions(service_cls) -> list[tuple[str, str, str]]:
    """(source service, event type, queue name) for each pooled event handler,
    named exactly as nameko names them."""
    from nameko.events import SERVICE_POOL, EventHandler
    from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

    found = []
    for attr in sorted(dir(service_cls)):
        for entrypoint in getattr(getattr(service_cls, attr, None), ENTRYPOINT_EXTENSIONS_ATTR, ()) or ():
            if isinstance(entrypoint, EventHandler) and entrypoint.handler_type == SERVICE_POOL:
                queue = f"evt-{entrypoint.source_service}-{entrypoint.event_type}--{service_cls.name}.{attr}"
                found.append((entrypoint.source_service, entrypoint.event_type, queue))
    return found


def declare_event_queues(service: str, amqp_uri: str | None = None) -> list[str]:
    """Declares the queues of ``<service>.worker``'s service class; returns their names."""
    try:
        with warnings.catch_warnings():
            # Importing nameko pulls in eventlet, which announces its deprecation;
            # this process only reads the handlers' declarations.
            warnings.simplefilter("ignore")
            module = importlib.import_module(f"{service}.worker")
    except ModuleNotFoundError:
        return []
    service_cls = next((obj for obj in vars(module).values()
                        if isinstance(obj, type) and getattr(obj, "name", None) == service), None)
    if service_cls is None:
        return []
    declared = []
    amqp_uri = amqp_uri or DEFAULT_AMQP_URI
    with kombu.Connection(amqp_uri, ssl=amqp_tls(amqp_uri)) as connection:
        channel = connection.channel()
        for source, event_type, queue_name in event_subscriptions(service_cls):
            # The same declarations as nameko's, or the worker's would fail.
            exchange = kombu.Exchange(f"{source}.events", type="topic", durable=True, auto_delete=False)
            kombu.Queue(queue_name, exchange=exchange, routing_key=event_type, durable=True,
                        auto_delete=False, exclusive=False)(channel).declare()
            declared.append(queue_name)
    log.info("event queues declared", extra={"queues": len(declared)})
    return declared


def queue_state(connection: kombu.Connection, queue: str, *, create: bool = False) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue as the broker counts them, by a
    passive declare on a channel of its own; None when the broker has no such
    queue (it closes that channel, so the next look opens another).

    ``create``: a durable queue the broker does not have yet is declared
    (empty) rather than looked for, as a worker's parking queues (durable, not
    auto-deleted, as the handler declares them when it parks): a queue looked
    for and missing costs an error line in the broker's log each time."""
    channel = connection.channel()
    try:
        if create:
            _, messages, consumers = channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        else:
            _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
        return messages, consumers
    except connection.channel_errors:
        return None
    finally:
        try:
            channel.close()
        except connection.channel_errors + connection.connection_errors:
            pass
