"""The kombu consumer: deliveries in, handlers called, ack only after commit.

Each delivery ends in exactly one of the ways ``worker.settle`` decides, and only after
the database transaction (or the broker-confirmed republish) it depends on has finished:

* handled: ack (a batch: one ``multiple`` ack after its transaction commits);
* the asset store down (a failover, read-only): held, unacked, and handled again once
  the store takes writes, no retry spent (``worker.outages``);
* transient failure: republished to one delay queue with the attempt count, then ack;
  after the last delay it is given up on like a permanent failure;
* permanent failure or invalid message: republished to ``<prefix>.dead`` with the reason
  in ``x-assetsync-error``, then ack;
* interrupted by shutdown, or a configuration error: put back for redelivery;
* its retry or dead-letter copy refused by the broker: held by the loop, unacked, and
  put back after a while (``worker.settle.GiveBack``); the loop goes on meanwhile;
* the broker connection lost, even in the middle of a handler: nothing more is acked;
  the loop reconnects and the broker redelivers.

Nothing is acked and dropped. If the republish itself fails, the delivery stays unacked
and the broker redelivers it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer as KombuConsumer

from schemas.topology import Topology
from worker import broker, content_header, files
from worker.decoding import decode
from worker.errors import ConfigError, Interrupted, InvalidMessage
from worker.handling import Failures, GiveUp, Handler
from worker.logs import log_context
from worker.metrics import Metrics, Timer
from worker.outages import handle_through_outages
from worker.probes import Health
from worker.settle import (
    DeadLetter,
    Decision,
    settle_copy,
    worth_splitting,
)
from worker.settler import Settler, describe

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
MAX_BATCH_AGE = 0.2  # seconds a partial batch may wait for more deliveries
HEALTH_TOUCH_EVERY = 5.0
MAX_FRAMES_PER_TICK = 1000
SLEEP_SLICE = 1.0  # seconds a wait in the loop's thread goes between two heartbeat checks


class ConnectedLoop:
    """The ``worker.handling.Loop`` of one consuming loop."""

    def __init__(
        self,
        conn: Connection,
        publisher: broker.ConfirmPublisher,
        stop: threading.Event,
        beat: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._stop = stop
        self._beat = beat
        self._thread = threading.get_ident()  # made in the loop's own thread
        self.publish = publisher.publish

    def tick(self) -> None:
        self.keep_alive()
        if self._stop.is_set():
            raise Interrupted("the replica is shutting down")

    def keep_alive(self) -> None:
        """Heartbeats both ways (and the loop's liveness), nothing else."""
        self._beat()
        with broker.lost_on_error("exchanging heartbeats"):
            # Read what arrived meanwhile: the server's heartbeats count as received only
            # once read, and a handler busy for two heartbeats would otherwise take the
            # connection for dead. Deliveries read here are buffered for later.
            for _ in range(MAX_FRAMES_PER_TICK):
                try:
                    self._conn.drain_events(timeout=0.001)
                except TimeoutError:
                    break
            self._conn.heartbeat_check()

    def waiting(self, queue: str) -> int | None:
        with broker.lost_on_error("counting a queue's messages"):
            return broker.messages_ready(self._conn, queue)

    def sleep(self, seconds: float) -> None:
        if threading.get_ident() != self._thread:  # never touch the connection from there
            if self._stop.wait(seconds):
                raise Interrupted("the replica is shutting down")
            return
        # The loop's own thread (a patient Jira client waiting out a Retry-After, the
        # look-ups of users gone): heartbeats keep flowing, so that a long wait is not
        # taken for a dead peer and the delivery in hand redelivered to another replica.
        deadline = time.monotonic() + seconds
        while True:
            self.tick()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._stop.wait(min(left, SLEEP_SLICE)):
                raise Interrupted("the replica is shutting down")


@dataclass(frozen=True)
class Route:
    """A queue, and what to do with its messages.

    :param batch_size: messages handled together (one transaction); 1 for one by one.
    :param handle: takes decoded messages, returns the failures among them.
    :param on_give_up: called with a decoded message that is about to be dead-lettered.
    :param check: called with each body and its headers before it is decoded; raises
        ``InvalidMessage`` for a delivery that must not be trusted (a bad signature).
    :param annotate: makes what the handler gets of a decoded message and the
        delivery's headers (default: the message alone).
    :param copies: the queue holds copies of dead letters (``worker.given_up``): one
        that cannot be used is acked, never republished (``settle.settle_copy``).
    """

    queue: str
    prefetch: int
    handle: Handler
    batch_size: int = 1
    on_give_up: GiveUp | None = None
    check: Callable[[bytes, Mapping[str, Any] | None], None] | None = None
    annotate: Callable[[Any, Mapping[str, Any]], Any] | None = None
    copies: bool = False


@dataclass
class _Pending:
    deliveries: list[Any] = field(default_factory=list)
    since: float = 0.0


class Consumer:
    """One consuming loop on its own connection (a replica runs three, in threads).

    :param url: the AMQP URL.
    :param topology: exchange and queue names.
    :param routes: the queues this loop consumes and their handlers.
    :param max_message_bytes: larger bodies are dead-lettered unread.
    :param heartbeat: AMQP heartbeat in seconds.
    :param stop: set to stop; shared by the loops of a replica, so that one loop's
        fatal error stops the others.
    :param health_file: touched while the loop runs, for container health checks.
    :param name: the loop's name in probes and logs.
    :param metrics: where deliveries are counted.
    :param health: where the loop reports its progress and connection.
    :param store_ready: whether the asset store takes writes now; given, an outage of
        the store is waited out instead of spending the messages' retries
        (``worker.outages``).
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
        name: str = "loop",
        metrics: Metrics | None = None,
        health: Health | None = None,
        store_ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.store_ready = store_ready
        self.metrics = metrics or Metrics()
        self.health = health or Health(stall_after=300)
        self.url = url
        self.topology = topology
        self.routes = list(routes)
        self.max_message_bytes = max_message_bytes
        self.heartbeat = heartbeat
        self.health_file = health_file
        self._stop = stop
        self.fatal: ConfigError | None = None
        self._publisher: broker.ConfirmPublisher | None = None
        self._settler: Settler | None = None
        self._loop: ConnectedLoop | None = None
        self._pending = {r.queue: _Pending() for r in self.routes}
        self._held: list[tuple[float, str, Any]] = []  # (when to put it back, queue, delivery)
        self._touched = 0.0
        self._health_failing = False
        self.handled = 0

    def run(self) -> None:
        """Consume until stopped; reconnect with backoff when the broker goes away.

        :raises ConfigError: when a delivery hit a configuration problem.
        """
        failures = 0
        while not self._stop.is_set():
            self.health.beat(self.name)
            conn = broker.connect(self.url, heartbeat=self.heartbeat)
            try:
                conn.ensure_connection(max_retries=1)
                failures = 0
                self._consume(conn)
            except broker.REFUSALS as exc:
                conn.collect()
                self.fatal = broker.refusal(exc)
                self._stop.set()
            except broker.CONNECTION_ERRORS as exc:
                # A lost or silent connection gets no goodbye: a close would wait for
                # an answer that is not coming.
                conn.collect()
                self.health.connected(self.name, False)
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                delay *= random.uniform(0.75, 1.25)  # replicas do not come back in step
                failures += 1
                log.warning("broker connection lost (%r); reconnecting in %.1fs", exc, delay)
                for pending in self._pending.values():
                    pending.deliveries.clear()  # unacked: the broker redelivers them
                self._held.clear()
                self._stop.wait(delay)
            else:
                with contextlib.suppress(*broker.CONNECTION_ERRORS):
                    conn.release()
        self.health.forget(self.name)
        if self.fatal is not None:
            raise self.fatal

    def _consume(self, conn: Connection) -> None:
        broker.declare(conn, self.topology)
        self._publisher = broker.ConfirmPublisher(conn)
        self._settler = Settler(
            topology=self.topology,
            publisher=self._publisher,
            metrics=self.metrics,
            on_fatal=self._fatal,
            hold=self._hold,
            repair=lambda: broker.declare(conn, self.topology),
        )
        self._loop = ConnectedLoop(
            conn, self._publisher, self._stop, lambda: self.health.beat(self.name)
        )
        consumers = [self._subscribe(conn, route) for route in self.routes]
        self.health.connected(self.name, True)
        log.info("consuming %s", ", ".join(r.queue for r in self.routes))
        while not self._stop.is_set():
            self.health.beat(self.name)
            idle = False
            try:
                conn.drain_events(timeout=0.05 if self._any_pending() else 1.0)
            except TimeoutError:
                idle = True
            self._flush_due(idle=idle)
            self._give_back(everything=False)
            conn.heartbeat_check()
            self._touch()
        # Stopping: what is in hand is finished and acked; the rest goes back.
        for c in consumers:
            with contextlib.suppress(*broker.CONNECTION_ERRORS):
                c.cancel()
        self._flush_due(idle=True, final=True)
        self._give_back(everything=True)

    def _subscribe(self, conn: Connection, route: Route) -> KombuConsumer:
        def on_message(message: Any) -> None:
            pending = self._pending[route.queue]
            if not pending.deliveries:
                pending.since = time.monotonic()
            pending.deliveries.append(message)

        # A channel per queue, so that each has its own prefetch window. Bodies stay the
        # bytes that were sent: py-amqp would otherwise decode them by whatever
        # content_encoding the publisher claimed, and signatures are over the bytes.
        channel = conn.channel()
        channel.auto_decode = False
        channel.Message = broker.AsSent
        consumer = KombuConsumer(
            channel,
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

    def _flush_due(self, *, idle: bool, final: bool = False) -> None:
        """Handle the batches that are due. ``final``: the loop is stopping; what is in
        hand is handled and nothing more is read."""
        for route in self.routes:
            pending = self._pending[route.queue]
            while pending.deliveries and (
                idle
                or len(pending.deliveries) >= route.batch_size
                or time.monotonic() - pending.since > MAX_BATCH_AGE
            ):
                batch = pending.deliveries[: route.batch_size]
                del pending.deliveries[: route.batch_size]
                self._handle(route, batch)
                if final:
                    continue
                if self._stop.is_set():
                    return  # the loop stops and finishes what is in hand
                assert self._loop is not None
                self._loop.keep_alive()  # between batches, and take in what arrived

    def _handle(self, route: Route, deliveries: list[Any]) -> None:
        with log_context(queue=route.queue):
            self._handle_batch(route, deliveries)

    def _handle_batch(self, route: Route, deliveries: list[Any]) -> None:
        decoded = []
        for message in deliveries:
            try:
                _check_header(message)
                if route.check is not None:
                    route.check(message.body, message.headers)
                body = self._decode(message)
                if route.annotate is not None:
                    body = route.annotate(body, message.headers or {})
                decoded.append((message, body))
            except InvalidMessage as exc:
                self._carry_out(route, message, None, DeadLetter(str(exc)))
            except Exception as exc:  # whatever a body does to a parser, never the loop
                log.error("cannot decode %s", describe(message), exc_info=exc)
                reason = f"cannot decode: {type(exc).__name__}: {exc}"
                self._carry_out(route, message, None, DeadLetter(reason))
        if not decoded:
            return
        assert self._loop is not None
        m = self.metrics
        try:
            with Timer(
                m.processing.labels(route.queue), m.in_progress.labels(route.queue), len(decoded)
            ):
                failures = self._call(route, [d for _, d in decoded])
        except Exception as exc:  # every failure is settled below
            if len(decoded) > 1 and worth_splitting(exc):
                # One bad message must not sink its batch: find it by going one by one.
                for message, body in decoded:
                    self._handle_one(route, message, body)
            else:
                for message, body in decoded:
                    self._settle_failure(route, message, body, exc)
            return
        done = [m for i, (m, _) in enumerate(decoded) if i not in failures]
        for i, failure in failures.items():
            message, body = decoded[i]
            self._settle_failure(route, message, body, failure)
        if done:
            if any(queue == route.queue for _, queue, _ in self._held):
                for message in done:  # a multiple ack would take the held ones too
                    message.ack()
            else:
                # Every earlier delivery on this channel is settled by now: a multiple ack.
                done[-1].ack(multiple=True)
            self.handled += len(done)
            m.messages.labels(route.queue, "synced").inc(len(done))

    def _call(self, route: Route, bodies: list[Any]) -> Failures:
        assert self._loop is not None
        if self.store_ready is None:
            return route.handle(bodies, self._loop)
        return handle_through_outages(
            route.handle, bodies, self._loop, takes_writes=self.store_ready
        )

    def _handle_one(self, route: Route, message: Any, body: Any) -> None:
        try:
            failures = self._call(route, [body])
        except Exception as exc:  # settled below
            self._settle_failure(route, message, body, exc)
            return
        if failures:
            self._settle_failure(route, message, body, failures[0])
        else:
            message.ack()
            self.handled += 1
            self.metrics.messages.labels(route.queue, "synced").inc()

    def _decode(self, message: Any) -> Any:
        return decode(
            message.delivery_info.get("routing_key", ""),
            message.body,
            content_type=message.content_type,
            max_bytes=self.max_message_bytes,
        )

    def _settle_failure(self, route: Route, message: Any, body: Any, exc: Exception) -> None:
        assert self._settler is not None
        if route.copies:
            self._settler.carry_out(route.queue, message, body, settle_copy(exc), on_give_up=None)
            return
        self._settler.failed(route.queue, message, body, exc, on_give_up=route.on_give_up)

    def _carry_out(self, route: Route, message: Any, body: Any, decision: Decision) -> None:
        assert self._settler is not None
        if route.copies and isinstance(decision, DeadLetter):
            decision = settle_copy(decision.reason)
        self._settler.carry_out(route.queue, message, body, decision, on_give_up=route.on_give_up)

    def _hold(self, queue: str, message: Any, seconds: float) -> None:
        self._held.append((time.monotonic() + seconds, queue, message))

    def _give_back(self, *, everything: bool) -> None:
        """Put back the held deliveries whose time has come (``everything``: all)."""
        if not self._held:
            return
        now = time.monotonic()
        due = [(q, m) for at, q, m in self._held if everything or at <= now]
        self._held = [h for h in self._held if not (everything or h[0] <= now)]
        for queue, message in due:
            message.requeue()
            self.metrics.messages.labels(queue, "requeued").inc()

    def _fatal(self, error: ConfigError) -> None:
        self.fatal = error
        self._stop.set()

    def _touch(self) -> None:
        now = time.monotonic()
        if self.health_file is None or now - self._touched < HEALTH_TOUCH_EVERY:
            return
        self._touched = now
        try:
            files.touch(self.health_file)  # in /tmp by default: never through a symlink
        except OSError as exc:  # the health file, not the broker: say so once, go on
            if not self._health_failing:
                log.warning("cannot touch the health file %s: %s", self.health_file, exc)
            self._health_failing = True
        else:
            self._health_failing = False


def _check_header(message: Any) -> None:
    """:raises InvalidMessage: the content header held what could not be read as sent
    (``worker.content_header``)."""
    problems = message.properties.get(content_header.PROBLEMS)
    if problems:
        raise InvalidMessage(f"its AMQP header could not be read: {'; '.join(problems)}")
