"""Publishing with pika: persistent messages, publisher confirms, mandatory routing.

``publish`` returns only when the broker has confirmed the message, and raises
``PublishError`` when it refuses it, cannot route it, or cannot be reached.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Any
from uuid import uuid4

import pika
import pika.exceptions

from schemas.messages import UserLoggedIn, _Message, to_body, utc_now
from schemas.topology import Topology
from worker.errors import PublishError


class Publisher:
    """One pika connection and a confirming channel.

    :param url: the AMQP URL (write the default vhost ``/`` as ``%2F``).
    :param topology: where messages go; checked on connect, and declared if missing, so
        a message published before any worker ever ran still has its queue.
    :param timeout: seconds for connecting, and for a blocked broker (resource alarm).
    :param connection_attempts: tries to connect, a second apart; long-running producers
        that retry on their own ask for one.
    """

    def __init__(
        self, *, url: str, topology: Topology, timeout: float = 10.0, connection_attempts: int = 2
    ) -> None:
        self.topology = topology
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.stack_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = connection_attempts
        params.retry_delay = 1
        try:
            self._conn = pika.BlockingConnection(params)
            try:
                self._channel = ensure_topology(self._conn, topology)
            except PublishError:
                self.close()
                raise
        except (pika.exceptions.AMQPError, OSError) as exc:
            where = f"{params.host}:{params.port}"
            raise PublishError(f"cannot reach RabbitMQ at {where} ({_why(exc)})") from exc

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                self._conn.close()

    @property
    def is_open(self) -> bool:
        """False once the connection is lost: a ``PublishError`` then means "reconnect",
        not "the broker refused this message"."""
        return bool(self._conn.is_open and self._channel.is_open)

    def keep_alive(self) -> None:
        """Answer heartbeats while idle: pika only services them inside its own calls.

        :raises PublishError: the connection is lost.
        """
        try:
            self._conn.process_data_events(time_limit=0)
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise PublishError(f"lost RabbitMQ: {_why(exc)}") from exc

    def publish(self, message: _Message) -> None:
        kind = message.model_dump()["type"]
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=str(uuid4()),
            timestamp=int(time.time()),
            type=kind,
            app_id="assetsync",
        )
        try:
            self._channel.basic_publish(
                exchange=self.topology.exchange,
                routing_key=kind,
                body=to_body(message),
                properties=properties,
                mandatory=True,
            )
        except pika.exceptions.UnroutableError as exc:
            raise PublishError(f"RabbitMQ could not route the {kind} message") from exc
        except pika.exceptions.NackError as exc:
            raise PublishError(f"RabbitMQ refused the {kind} message") from exc
        except pika.exceptions.AMQPError as exc:
            raise PublishError(f"lost RabbitMQ while publishing: {_why(exc)}") from exc


def ensure_topology(conn: Any, topology: Topology) -> Any:
    """A confirming channel, once the exchange and the queues are there.

    They are checked with passive declarations, which need no permission: a producer's
    own RabbitMQ user may only publish its message type (schemas/access.py). Only when
    something is missing is the topology declared, which needs configure permission;
    a producer without it then fails, saying that a worker must declare it first.
    """
    channel = conn.channel()
    try:
        channel.exchange_declare(exchange=topology.exchange, passive=True)
        for q in topology.queues(retry=False):
            channel.queue_declare(queue=q.name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
        channel = conn.channel()
        try:
            declare(channel, topology)
        except pika.exceptions.ChannelClosedByBroker as refused:
            if refused.reply_code != 403:
                raise
            raise PublishError(
                f"the exchange {topology.exchange!r} or its queues are missing and this"
                " RabbitMQ user may not declare them: start a worker first"
            ) from refused
    channel.confirm_delivery()
    return channel


def declare(channel: Any, topology: Topology) -> None:
    """Declare the shared topology with pika (the worker does the same with kombu)."""
    for ex in topology.exchanges():
        channel.exchange_declare(
            exchange=ex.name, exchange_type=ex.type, durable=True, arguments=ex.arguments
        )
    for q in topology.queues(retry=False):
        channel.queue_declare(queue=q.name, durable=True, arguments=q.arguments)
        for b in q.bindings:
            channel.queue_bind(
                queue=q.name, exchange=b.exchange, routing_key=b.routing_key, arguments=b.arguments
            )


def publish_user_logged_in(
    publisher: Publisher,
    *,
    username: str | None = None,
    user_key: str | None = None,
    account_id: str | None = None,
) -> UserLoggedIn:
    """Publish that a user logged in; give exactly one identifier.

    :raises pydantic.ValidationError: not exactly one identifier.
    :raises PublishError: the broker did not confirm the message.
    """
    event = UserLoggedIn(
        event_id=uuid4(),
        occurred_at=utc_now(),
        username=username,
        user_key=user_key,
        account_id=account_id,
    )
    publisher.publish(event)
    return event


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
