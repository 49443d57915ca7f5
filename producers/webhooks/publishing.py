"""The receiver's one publishing thread: pika is not thread-safe, so one thread owns the
connection and every request hands its message over and waits for the confirm.

A request is answered 2xx only after its message was confirmed. While RabbitMQ cannot
be reached, requests fail at once (the HTTP side answers 503 and Jira retries later)
instead of each waiting for a connect timeout; reconnecting is tried again after a
back-off that grows to ``max_backoff`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from producers.publisher import Publisher, PublishError
from schemas.messages import _Message

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The message was not confirmed: RabbitMQ is unreachable, refused it, or is busy."""


class PublishingThread:
    """
    :param connect: opens a ``Publisher`` (called in the thread, again after each loss).
    :param max_pending: messages waiting for the thread at most; more are refused.
    :param max_backoff: the longest pause between reconnection attempts, in seconds.
    :param idle_tick: seconds between heartbeat checks while nothing is published.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Publisher],
        max_pending: int = 1000,
        max_backoff: float = 5.0,
        idle_tick: float = 1.0,
    ) -> None:
        self._connect = connect
        # None asks the thread to stop.
        self._queue: queue.Queue[tuple[_Message, Future[None]] | None] = queue.Queue(
            maxsize=max_pending
        )
        self._max_backoff = max_backoff
        self._idle_tick = idle_tick
        self._publisher: Publisher | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self.broker_up: bool | None = None  # None until the first attempt
        self.published = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish what is queued, then close the connection."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, message: _Message) -> Future[None]:
        """Queue ``message``; the future completes when RabbitMQ confirmed it.

        The future fails with ``BrokerUnavailable``; cancel it to drop a message that
        was not sent yet.
        """
        future: Future[None] = Future()
        try:
            self._queue.put_nowait((message, future))
        except queue.Full:
            future.set_exception(BrokerUnavailable("too many messages waiting for RabbitMQ"))
        return future

    def _run(self) -> None:
        # Say at start whether RabbitMQ can be reached (logged); until it can,
        # deliveries get 503.
        with contextlib.suppress(BrokerUnavailable):
            self._connected()
        while True:
            try:
                item = self._queue.get(timeout=self._idle_tick)
            except queue.Empty:
                self._keep_alive()
                continue
            if item is None:
                break
            message, future = item
            if not future.set_running_or_notify_cancel():
                continue  # the request gave up waiting: Jira will send it again
            try:
                self._publish(message)
            except BrokerUnavailable as exc:
                future.set_exception(exc)
            except Exception as exc:  # never let one message end the thread
                log.exception("unexpected error while publishing")
                future.set_exception(BrokerUnavailable(f"internal error: {exc}"))
            else:
                self.published += 1
                future.set_result(None)
        self._disconnect()

    def _publish(self, message: _Message) -> None:
        # A connection idle for a long time may be dead without pika knowing: one
        # failure on an open-looking connection earns one immediate fresh attempt.
        for fresh in (False, True):
            publisher = self._connected()
            try:
                publisher.publish(message)
                return
            except PublishError as exc:
                if publisher.is_open:
                    raise BrokerUnavailable(str(exc)) from exc  # refused: not a lost link
                self._disconnect()
                log.warning("%s", exc)
                if fresh:
                    raise BrokerUnavailable(str(exc)) from exc

    def _connected(self) -> Publisher:
        if self._publisher is not None:
            return self._publisher
        now = time.monotonic()
        if now < self._retry_at:
            raise BrokerUnavailable(
                f"RabbitMQ is unreachable; next attempt in {self._retry_at - now:.1f} s"
            )
        try:
            self._publisher = self._connect()
        except PublishError as exc:
            self._backoff = min(self._max_backoff, max(0.5, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            if self.broker_up is not False:
                log.error("%s; answering 503 until it is back", exc)
            self.broker_up = False
            raise BrokerUnavailable(str(exc)) from exc
        if self.broker_up is not True:
            log.info("connected to RabbitMQ" if self.broker_up is None else "RabbitMQ is back")
        self.broker_up, self._backoff, self._retry_at = True, 0.0, 0.0
        return self._publisher

    def _keep_alive(self) -> None:
        if self._publisher is None:
            return
        try:
            self._publisher.keep_alive()
        except PublishError as exc:
            log.warning("%s; reconnecting on the next delivery", exc)
            self._disconnect()

    def _disconnect(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()
