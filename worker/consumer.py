"""The kombu consumer: deliveries in, handlers called, ack only after commit.

Each delivery ends in exactly one of these ways, and only after the database
transaction (or the broker-confirmed republish) it depends on has finished:

* handled: ack (a batch: one ``multiple`` ack after its transaction commits);
* transient failure: republished to a delay queue with the attempt count, then ack;
  after the last delay it is given up on like a permanent failure;
* permanent failure or invalid message: republished to ``<prefix>.dead`` with the reason
  in ``x-assetsync-error``, then ack;
* interrupted by shutdown, or a configuration error: put back for redelivery.

Nothing is acked and dropped. If the republish itself fails, the delivery stays unacked
and the broker redelivers it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import amqp.exceptions
import kombu.exceptions
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer as KombuConsumer

from schemas.topology import ATTEMPT_HEADER, ERROR_HEADER, RETRY_HEADER, Topology
from worker import broker
from worker.decoding import decode
from worker.errors import (
    BrokerRefused,
    ConfigError,
    Interrupted,
    InvalidMessage,
    PermanentError,
    TransientError,
)

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
MAX_BATCH_AGE = 0.2  # seconds a partial batch may wait for more deliveries
# Any of these means the connection is gone or unusable: reconnect, and the broker
# redelivers whatever was not acked.
BROKER_ERRORS = (
    OSError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.OperationalError,
    BrokerRefused,
)


class Session:
    """What a handler may use of the consumer's connection while it works."""

    def __init__(self, conn: Connection, publisher: broker.ConfirmPublisher, stop: threading.Event):
        self._conn = conn
        self._stop = stop
        self.publish = publisher.publish

    def tick(self) -> None:
        """Call between steps of long work: keeps heartbeats flowing, and raises
        ``Interrupted`` when the replica is shutting down."""
        self._conn.heartbeat_check()
        if self._stop.is_set():
            raise Interrupted("the replica is shutting down")


Handler = Callable[[Sequence[Any], Session], None]
GiveUp = Callable[[Any, str], None]


@dataclass(frozen=True)
class Route:
    """A queue, and what to do with its messages.

    :param batch_size: messages handled together (one transaction); 1 for one by one.
    :param handle: takes decoded messages; raises an ``AssetSyncError`` on failure.
    :param on_give_up: called with a decoded message that is about to be dead-lettered.
    """

    queue: str
    prefetch: int
    handle: Handler
    batch_size: int = 1
    on_give_up: GiveUp | None = None


@dataclass
class _Pending:
    deliveries: list[Any] = field(default_factory=list)
    since: float = 0.0


class Consumer:
    """One consuming loop on its own connection (a replica runs one or two, in threads).

    :param url: the AMQP URL.
    :param topology: exchange and queue names.
    :param routes: the queues this loop consumes and their handlers.
    :param max_message_bytes: larger bodies are dead-lettered unread.
    :param heartbeat: AMQP heartbeat in seconds.
    :param stop: set to stop; shared by the loops of a replica, so that one loop's
        fatal error stops the others.
    :param health_file: touched while the loop runs, for container health checks.
    """

    def __init__(
        self,
        *,
        url: str,
        topology: Topology,
        routes: Sequence[Route],
        max_message_bytes: int,
        heartbeat: int,
        stop: threading.Event,
        health_file: Path | None = None,
    ) -> None:
        self.url = url
        self.topology = topology
        self.routes = list(routes)
        self.max_message_bytes = max_message_bytes
        self.heartbeat = heartbeat
        self.health_file = health_file
        self._stop = stop
        self.fatal: ConfigError | None = None
        self._publisher: broker.ConfirmPublisher | None = None
        self._session: Session | None = None
        self._pending = {r.queue: _Pending() for r in self.routes}
        self._touched = 0.0
        self.handled = 0

    def run(self) -> None:
        """Consume until stopped; reconnect with backoff when the broker goes away.

        :raises ConfigError: when a delivery hit a configuration problem.
        """
        failures = 0
        while not self._stop.is_set():
            try:
                with broker.connect(self.url, heartbeat=self.heartbeat) as conn:
                    conn.ensure_connection(max_retries=1)
                    failures = 0
                    self._consume(conn)
            except BROKER_ERRORS as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("broker connection lost (%s); reconnecting in %.0fs", exc, delay)
                for pending in self._pending.values():
                    pending.deliveries.clear()  # unacked: the broker redelivers them
                self._stop.wait(delay)
        if self.fatal is not None:
            raise self.fatal

    def _consume(self, conn: Connection) -> None:
        broker.declare(conn.default_channel, self.topology)
        self._publisher = broker.ConfirmPublisher(conn)
        self._session = Session(conn, self._publisher, self._stop)
        consumers = [self._subscribe(conn, route) for route in self.routes]
        log.info("consuming %s", ", ".join(r.queue for r in self.routes))
        while not self._stop.is_set():
            idle = False
            try:
                conn.drain_events(timeout=0.05 if self._any_pending() else 1.0)
            except TimeoutError:
                idle = True
            self._flush_due(idle=idle)
            conn.heartbeat_check()
            self._touch()
        # Stopping: what is in hand is finished and acked; the rest goes back.
        for c in consumers:
            with contextlib.suppress(*BROKER_ERRORS):
                c.cancel()
        self._flush_due(idle=True)

    def _subscribe(self, conn: Connection, route: Route) -> KombuConsumer:
        def on_message(message: Any) -> None:
            pending = self._pending[route.queue]
            if not pending.deliveries:
                pending.since = time.monotonic()
            pending.deliveries.append(message)

        # A channel per queue, so that each has its own prefetch window.
        consumer = KombuConsumer(
            conn.channel(),
            queues=[Queue(route.queue, no_declare=True)],
            on_message=on_message,
            prefetch_count=route.prefetch,
            auto_declare=False,
            no_ack=False,
        )
        consumer.consume()
        return consumer

    def _any_pending(self) -> bool:
        return any(p.deliveries for p in self._pending.values())

    def _flush_due(self, *, idle: bool) -> None:
        now = time.monotonic()
        for route in self.routes:
            pending = self._pending[route.queue]
            if pending.deliveries and (
                idle
                or len(pending.deliveries) >= route.batch_size
                or now - pending.since > MAX_BATCH_AGE
            ):
                batch, pending.deliveries = pending.deliveries, []
                self._handle(route, batch)

    def _handle(self, route: Route, deliveries: list[Any]) -> None:
        decoded = []
        for message in deliveries:
            try:
                decoded.append((message, self._decode(message)))
            except InvalidMessage as exc:
                self._give_up(route, message, None, str(exc))
        if not decoded:
            return
        assert self._session is not None
        try:
            route.handle([d for _, d in decoded], self._session)
        except Exception as exc:  # every failure is settled below
            if len(decoded) > 1 and not isinstance(exc, TransientError | ConfigError | Interrupted):
                # One bad message must not sink its batch: find it by going one by one.
                for message, body in decoded:
                    self._handle_one(route, message, body)
            else:
                for message, body in decoded:
                    self._settle_failure(route, message, body, exc)
        else:
            decoded[-1][0].ack(multiple=True)  # every earlier delivery is settled
            self.handled += len(decoded)

    def _handle_one(self, route: Route, message: Any, body: Any) -> None:
        assert self._session is not None
        try:
            route.handle([body], self._session)
        except Exception as exc:  # settled below
            self._settle_failure(route, message, body, exc)
        else:
            message.ack()
            self.handled += 1

    def _decode(self, message: Any) -> Any:
        return decode(
            message.delivery_info.get("routing_key", ""),
            message.body,
            content_type=message.content_type,
            max_bytes=self.max_message_bytes,
        )

    def _settle_failure(self, route: Route, message: Any, body: Any, exc: Exception) -> None:
        if isinstance(exc, Interrupted):
            message.requeue()
            return
        if isinstance(exc, ConfigError):
            log.critical("%s", exc)
            message.requeue()
            self.fatal = exc
            self._stop.set()
            return
        if isinstance(exc, TransientError):
            self._retry(route, message, body, exc)
            return
        if isinstance(exc, PermanentError):
            reason = str(exc)
        else:
            reason = f"internal error: {type(exc).__name__}: {exc}"
            log.error("unexpected error on %s", _describe(message), exc_info=exc)
        self._give_up(route, message, body, reason)

    def _retry(self, route: Route, message: Any, body: Any, exc: TransientError) -> None:
        attempt = _attempt(message)
        delays = self.topology.retry_delays
        if attempt > len(delays):
            self._give_up(route, message, body, f"gave up after {attempt} attempts: {exc}")
            return
        delay = pick_delay(delays, attempt, exc.retry_after)
        log.info("%s failed (%s); attempt %d in %.1fs", _describe(message), exc, attempt + 1, delay)
        headers = {
            ATTEMPT_HEADER: attempt + 1,
            RETRY_HEADER: self.topology.retry_key(delay),
            ERROR_HEADER: str(exc)[:1000],
        }
        self._republish(message, self.topology.retry_exchange, headers)

    def _give_up(self, route: Route, message: Any, body: Any, reason: str) -> None:
        log.warning("dead-lettering %s: %s", _describe(message), reason)
        if body is not None and route.on_give_up is not None:
            try:
                route.on_give_up(body, reason)
            except Exception:  # cannot record it: keep the message for later
                log.exception("could not record the failure of %s; requeued", _describe(message))
                message.requeue()
                return
        self._republish(message, self.topology.dead_exchange, {ERROR_HEADER: reason[:1000]})

    def _republish(self, message: Any, exchange: str, headers: dict[str, Any]) -> None:
        assert self._publisher is not None
        self._publisher.publish([broker.copy_of(message, exchange=exchange, headers=headers)])
        message.ack()

    def _touch(self) -> None:
        now = time.monotonic()
        if self.health_file is not None and now - self._touched > 5:
            self.health_file.touch()
            self._touched = now


def pick_delay(delays: tuple[float, ...], attempt: int, retry_after: float | None) -> float:
    """The delay before attempt ``attempt + 1``: the configured one for this attempt, or
    the first longer one when Jira asked us (``Retry-After``) to wait longer."""
    wanted = max(delays[attempt - 1], retry_after or 0.0)
    return next((d for d in delays[attempt - 1 :] if d >= wanted), delays[-1])


def _attempt(message: Any) -> int:
    try:
        return max(1, int((message.headers or {}).get(ATTEMPT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


def _describe(message: Any) -> str:
    props = message.properties
    rk = message.delivery_info.get("routing_key", "?")
    return f"{rk} message {props.get('message_id') or message.delivery_tag}"
