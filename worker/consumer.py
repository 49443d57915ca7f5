"""The kombu consumer: deliveries in, handlers called, ack only after commit.

Each delivery ends in exactly one of three ways, and only after the database
transaction (or the confirmed republish) it depends on has finished:

* handled: ack;
* transient failure: republished to a delay queue with the attempt count, then ack;
  after the last delay it is dead-lettered instead;
* permanent failure or invalid message: republished to ``<prefix>.dead`` with the reason
  in ``x-assetsync-error``, then ack.

Nothing is acked and dropped. If the republish itself fails, the delivery stays unacked
and the broker redelivers it. A ``ConfigError`` (say, revoked Jira credentials) puts the
delivery back and stops the replica with one clear line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import amqp.exceptions
import kombu.exceptions
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer as KombuConsumer
from kombu.messaging import Producer

from schemas.messages import UserLoggedIn
from schemas.topology import ATTEMPT_HEADER, ERROR_HEADER, RETRY_HEADER, Topology
from worker import broker
from worker.decoding import decode
from worker.errors import ConfigError, PermanentError, TransientError
from worker.handlers import Syncer

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
# Any of these means the connection is gone or unusable: reconnect, and the broker
# redelivers whatever was not acked.
BROKER_ERRORS = (
    OSError,
    amqp.exceptions.AMQPError,
    amqp.exceptions.MessageNacked,
    kombu.exceptions.OperationalError,
)


class Consumer:
    """One replica's consuming loop.

    :param url: the AMQP URL.
    :param topology: exchange and queue names.
    :param syncer: does the work for each message.
    :param max_message_bytes: larger bodies are dead-lettered unread.
    :param login_prefetch: login events in flight at once.
    :param heartbeat: AMQP heartbeat in seconds.
    :param health_file: touched while the loop runs, for container health checks.
    """

    def __init__(
        self,
        *,
        url: str,
        topology: Topology,
        syncer: Syncer,
        max_message_bytes: int,
        login_prefetch: int,
        heartbeat: int,
        health_file: Path | None = None,
    ) -> None:
        self.url = url
        self.topology = topology
        self.syncer = syncer
        self.max_message_bytes = max_message_bytes
        self.login_prefetch = login_prefetch
        self.heartbeat = heartbeat
        self.health_file = health_file
        self._stopping = threading.Event()
        self._fatal: ConfigError | None = None
        self._producer: Producer | None = None
        self._touched = 0.0
        self.handled = 0

    def stop(self) -> None:
        """Ask the loop to stop; it finishes the delivery in hand, acks it and returns.

        Safe to call from a signal handler: it only sets a flag the loop polls.
        """
        self._stopping.set()

    def run(self) -> None:
        """Consume until ``stop()``; reconnect with backoff when the broker goes away.

        :raises ConfigError: when a delivery hit a configuration problem.
        """
        failures = 0
        while not self._stopping.is_set():
            try:
                with broker.connect(self.url, heartbeat=self.heartbeat, confirm=True) as conn:
                    conn.ensure_connection(max_retries=1)
                    failures = 0
                    self._consume(conn)
            except BROKER_ERRORS as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("broker connection lost (%s); reconnecting in %.0fs", exc, delay)
                self._stopping.wait(delay)
            if self._fatal is not None:
                raise self._fatal

    def _consume(self, conn: Connection) -> None:
        broker.declare(conn.default_channel, self.topology)
        self._producer = Producer(conn.channel())
        routes = [(self.topology.login_queue, self._on_login, self.login_prefetch)]
        consumers = [self._subscribe(conn, *route) for route in routes]
        log.info("consuming %s", ", ".join(route[0] for route in routes))
        for c in consumers:
            c.consume()
        while not self._stopping.is_set() and self._fatal is None:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=1.0)
            conn.heartbeat_check()
            self._touch()
        for c in consumers:
            c.cancel()

    def _subscribe(
        self, conn: Connection, queue: str, on_message: Callable[[Any], None], prefetch: int
    ) -> KombuConsumer:
        # A channel per consumer, so each queue has its own prefetch window.
        return KombuConsumer(
            conn.channel(),
            queues=[Queue(queue, no_declare=True)],
            on_message=on_message,
            prefetch_count=prefetch,
            auto_declare=False,
            no_ack=False,
        )

    def _on_login(self, message: Any) -> None:
        try:
            event = self._decode(message)
            assert isinstance(event, UserLoggedIn)
            self.syncer.login(event)
        except Exception as exc:
            self._settle_failure(message, exc)
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

    def _settle_failure(self, message: Any, exc: Exception) -> None:
        if isinstance(exc, ConfigError):
            log.critical("%s", exc)
            message.requeue()
            self._fatal = exc
            return
        if isinstance(exc, TransientError):
            self._retry(message, exc)
            return
        if isinstance(exc, PermanentError):
            reason = str(exc)
            log.warning("dead-lettering %s: %s", _describe(message), reason)
        else:
            reason = f"internal error: {type(exc).__name__}: {exc}"
            log.exception("dead-lettering %s after an unexpected error", _describe(message))
        self._dead_letter(message, reason)

    def _retry(self, message: Any, exc: TransientError) -> None:
        attempt = _attempt(message)
        delays = self.topology.retry_delays
        if attempt > len(delays):
            reason = f"gave up after {attempt} attempts: {exc}"
            log.warning("dead-lettering %s: %s", _describe(message), reason)
            self._dead_letter(message, reason)
            return
        delay = pick_delay(delays, attempt, exc.retry_after)
        log.info("%s failed (%s); attempt %d in %.1fs", _describe(message), exc, attempt + 1, delay)
        assert self._producer is not None
        broker.republish(
            self._producer,
            message,
            exchange=self.topology.retry_exchange,
            headers={
                ATTEMPT_HEADER: attempt + 1,
                RETRY_HEADER: self.topology.retry_key(delay),
                ERROR_HEADER: str(exc),
            },
        )
        message.ack()

    def _dead_letter(self, message: Any, reason: str) -> None:
        assert self._producer is not None
        broker.republish(
            self._producer,
            message,
            exchange=self.topology.dead_exchange,
            headers={ERROR_HEADER: reason[:1000]},
        )
        message.ack()

    def _touch(self) -> None:
        now = time.monotonic()
        if self.health_file is not None and now - self._touched > 5:
            self.health_file.touch()
            os.utime(self.health_file)
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
