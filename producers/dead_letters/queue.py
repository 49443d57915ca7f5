"""The dead-letter queue over one pika connection: take messages without removing them,
then remove, republish or give back each one.

A message is taken with ``basic.get`` and no auto-ack, so it stays in the queue, held
by this connection and invisible to anyone else, until it is acked (removed: purged,
or replayed after the broker confirmed its copy) or released (given back). Whatever is
still held when the connection ends, however it ends, goes back to the queue: nothing
is ever lost by reading.

Giving back is not free on a quorum queue: RabbitMQ counts it as a delivery
(``x-delivery-count``) and, unless the queue has a delivery limit, puts the message at
the back of the queue. Messages are therefore held until the end of a command and
given back together, in the order they were taken; reading the whole queue keeps its
order. RabbitMQ 4 applies a default delivery limit of 20 to quorum queues, and drops a
message past it when the queue has no dead-letter target, as the dead queue has none:
see ``HIGH_DELIVERY_COUNT``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pika
import pika.exceptions

from producers.dead_letters.letters import Envelope
from producers.publisher import declare
from schemas.topology import Topology
from worker import content_header
from worker.cli import one_line
from worker.errors import TransientError

# Kept on a replayed copy. Not user_id (RabbitMQ checks it against the connection's
# user) nor expiration (a copy could expire at once).
KEPT_PROPERTIES = (
    "content_type",
    "content_encoding",
    "message_id",
    "timestamp",
    "correlation_id",
    "reply_to",
    "type",
    "app_id",
)
READ_PROPERTIES = (*KEPT_PROPERTIES, "delivery_mode", "priority", "expiration", "user_id")
# Give-backs a dead letter may take before RabbitMQ 4's default delivery limit (20)
# comes close; past it, the tool warns.
HIGH_DELIVERY_COUNT = 10


class DeadQueueError(TransientError):
    """The broker could not be reached or refused; the message is one line for a person."""


@dataclass(frozen=True)
class Taken:
    """A message held by this connection until it is removed or released."""

    tag: int
    envelope: Envelope


class DeadQueue:
    """:param url: the AMQP URL.
    :param topology: names the dead queue and where replayed messages go.
    :param timeout: seconds for connecting and for each broker round trip.
    """

    def __init__(self, *, url: str, topology: Topology, timeout: float = 10.0) -> None:
        self.topology = topology
        content_header.install_pika()  # a dead letter may be any bytes
        params = pika.URLParameters(url)
        params.socket_timeout = timeout
        params.stack_timeout = timeout
        params.blocked_connection_timeout = timeout
        params.connection_attempts = 2
        params.retry_delay = 1
        with _translate(f"cannot reach RabbitMQ at {params.host}:{params.port}"):
            self._conn = pika.BlockingConnection(params)
        try:
            with _translate("RabbitMQ refused to open a channel"):
                self._channel = self._conn.channel()
                self._channel.confirm_delivery()
        except BaseException:
            self.close()
            raise
        self._held = 0

    def __enter__(self) -> DeadQueue:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def server_version(self) -> tuple[int, ...]:
        raw = self._conn._impl.server_properties.get("version", b"0")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return tuple(int(p) for p in text.split("-")[0].split(".") if p.isdigit())

    def count(self) -> int:
        """Messages ready in the dead queue (not counting those this connection holds).

        :raises DeadQueueError: there is no such queue.
        """
        name = self.topology.dead_queue
        with _translate(f"there is no queue {name} (has anything run with this prefix?)"):
            return int(self._channel.queue_declare(name, passive=True).method.message_count)

    def take(self, limit: int) -> Iterator[Taken]:
        """Hold up to ``limit`` messages, one at a time, until the queue has no more
        ready. Messages dead-lettered meanwhile may be among them."""
        for _ in range(limit):
            with _translate("lost RabbitMQ while reading the dead queue"):
                method, props, body = self._channel.basic_get(self.topology.dead_queue)
            if method is None:
                return
            self._held += 1
            yield Taken(method.delivery_tag, _envelope(method.routing_key, props, body))

    def prepare_replay(self) -> None:
        """Declare the topology, so that every queue a replayed message goes to exists."""
        with _translate("RabbitMQ refused to declare the assetsync topology"):
            declare(self._channel, self.topology)

    def republish(self, taken: Taken, headers: dict[str, Any]) -> None:
        """Publish a copy to the main exchange under its type, and return once the
        broker has confirmed it. The original stays held.

        :raises DeadQueueError: the broker refused the copy or could not route it.
        """
        envelope = taken.envelope
        kept = {k: envelope.properties[k] for k in KEPT_PROPERTIES if k in envelope.properties}
        properties = pika.BasicProperties(
            **kept, headers=headers, delivery_mode=pika.DeliveryMode.Persistent
        )
        try:
            self._channel.basic_publish(
                exchange=self.topology.exchange,
                routing_key=envelope.routing_key,
                body=envelope.body,
                properties=properties,
                mandatory=True,
            )
        except pika.exceptions.UnroutableError as exc:
            raise DeadQueueError(f"RabbitMQ could not route {envelope.routing_key!r}") from exc
        except pika.exceptions.NackError as exc:
            raise DeadQueueError("RabbitMQ refused the replayed copy") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise DeadQueueError(f"lost RabbitMQ while replaying: {_why(exc)}") from exc

    def remove(self, taken: Taken) -> None:
        """Ack one held message: it leaves the dead queue."""
        with _translate("lost RabbitMQ before a message could be removed; it stays"):
            self._channel.basic_ack(taken.tag)  # never ``multiple``: others stay held
        self._held -= 1

    def release_all(self) -> None:
        """Give back every message still held, in the order taken."""
        if self._held:
            with _translate("lost RabbitMQ while giving messages back (they go back anyway)"):
                self._channel.basic_nack(0, multiple=True, requeue=True)
            self._held = 0

    def close(self) -> None:
        # Closing gives back anything still held.
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            if self._conn.is_open:
                self._conn.close()


def _envelope(routing_key: str, props: pika.BasicProperties, body: bytes) -> Envelope:
    values = {name: getattr(props, name, None) for name in READ_PROPERTIES}
    if isinstance(routing_key, bytes):  # not UTF-8: pika hands the bytes over
        routing_key = routing_key.decode(errors="backslashreplace")
    return Envelope(
        routing_key=routing_key,
        body=body,
        headers=dict(props.headers or {}),
        properties={k: v for k, v in values.items() if v is not None},
        problems=tuple(getattr(props, "problems", ())),
    )


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
    try:
        yield
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise DeadQueueError(f"{what} ({_why(exc)})") from exc


def _why(exc: BaseException) -> str:
    return one_line(exc)
