"""kombu plumbing shared by the worker's consumers: connecting, declaring the topology,
and republishing a delivery elsewhere (retry or dead letter) with confirms."""

from __future__ import annotations

from typing import Any

from kombu.connection import Connection
from kombu.messaging import Producer

from schemas.topology import Topology

CONFIRM_TIMEOUT = 10.0


def connect(url: str, *, heartbeat: int, confirm: bool) -> Connection:
    """A kombu connection with heartbeats on (kombu's default is off).

    :param confirm: publish with publisher confirms: ``publish`` returns only once the
        broker has taken responsibility for the message.
    """
    options: dict[str, Any] = {"confirm_publish": True} if confirm else {}
    return Connection(url, heartbeat=heartbeat, connect_timeout=10, transport_options=options)


def declare(channel: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding; harmless when they already exist."""
    for ex in topology.exchanges():
        channel.exchange_declare(
            exchange=ex.name,
            type=ex.type,
            durable=True,
            auto_delete=False,
            arguments=ex.arguments,
        )
    for q in topology.queues():
        channel.queue_declare(queue=q.name, durable=True, auto_delete=False, arguments=q.arguments)
        for b in q.bindings:
            channel.queue_bind(
                queue=q.name,
                exchange=b.exchange,
                routing_key=b.routing_key,
                arguments=b.arguments,
            )


def republish(producer: Producer, message: Any, *, exchange: str, headers: dict[str, Any]) -> None:
    """Publish a delivery's body and properties again, with extra headers, and wait for
    the broker's confirm. The caller acks the original only after this returns."""
    props = message.properties
    producer.publish(
        message.body,
        exchange=exchange,
        routing_key=message.delivery_info.get("routing_key", ""),
        headers={**(message.headers or {}), **headers},
        content_type=message.content_type or "application/octet-stream",
        content_encoding=message.content_encoding or "binary",
        delivery_mode=2,
        message_id=props.get("message_id"),
        timestamp=props.get("timestamp"),
        correlation_id=props.get("correlation_id"),
        app_id=props.get("app_id"),
        timeout=CONFIRM_TIMEOUT,
        confirm_timeout=CONFIRM_TIMEOUT,
    )
