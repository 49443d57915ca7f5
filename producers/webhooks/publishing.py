"""The receiver's publishing threads: pika is not thread-safe, so each thread owns one
connection, and a request hands its message to whichever thread is free and waits for
the confirm.

A request is answered 2xx only after its message was confirmed. Each confirm waits for
RabbitMQ to replicate and write the message (about 1.5 ms here), so a few threads with
a connection each keep several messages in flight. While RabbitMQ cannot be reached,
requests fail at once (the HTTP side answers 503 and Jira retries later) instead of
each waiting for a connect timeout; reconnecting is tried again after a back-off that
grows to ``max_backoff`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from producers.publisher import Publisher
from schemas.messages import _Message
from worker.errors import PublishError, TransientError

log = logging.getLogger(__name__)


class BrokerUnavailable(TransientError):
    """The message was not confirmed: RabbitMQ is unreachable, refused it, or is busy."""


class Publishers:
    """
    :param connect: opens a ``Publisher`` (called in a thread, again after each loss).
    :param threads: publishing threads, one connection each.
    :param max_pending: messages waiting for a thread at most; more are refused.
    :param max_backoff: the longest pause between reconnection attempts, in seconds.
    :param idle_tick: seconds between heartbeat checks while nothing is published.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Publisher],
        threads: int = 4,
        max_pending: int = 1000,
        max_backoff: float = 5.0,
        idle_tick: float = 1.0,
    ) -> None:
        self._connect = connect
        # None asks one thread to stop.
        self._queue: queue.Queue[tuple[_Message, Future[None]] | None] = queue.Queue(
            maxsize=max_pending
        )
        self._max_backoff = max_backoff
        self._idle_tick = idle_tick
        self._threads = [
            threading.Thread(target=self._run, name=f"publisher-{n}", daemon=True)
            for n in range(threads)
        ]
        self.broker_up: bool | None = None  # None until the first attempt

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish what is queued, then close the connections."""
        running = [t for t in self._threads if t.is_alive()]
        for _ in running:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

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
        link = _Link(self)
        # Say at start whether RabbitMQ can be reached (logged); until it can,
        # deliveries get 503.
        with contextlib.suppress(BrokerUnavailable):
            link.connected()
        while True:
            try:
                item = self._queue.get(timeout=self._idle_tick)
            except queue.Empty:
                link.keep_alive()
                continue
            if item is None:
                break
            message, future = item
            if not future.set_running_or_notify_cancel():
                continue  # the request gave up waiting: Jira will send it again
            try:
                link.publish(message)
            except BrokerUnavailable as exc:
                future.set_exception(exc)
            except Exception as exc:  # never let one message end the thread
                log.exception("unexpected error while publishing")
                future.set_exception(BrokerUnavailable(f"internal error: {exc}"))
            else:
                future.set_result(None)
        link.disconnect()

    def _went(self, up: bool, why: str = "") -> None:
        """Log a change of the broker's state once, not once per thread."""
        if up and self.broker_up is not True:
            log.info("connected to RabbitMQ" if self.broker_up is None else "RabbitMQ is back")
        elif not up and self.broker_up is not False:
            log.error("%s; answering 503 until it is back", why)
        self.broker_up = up


class _Link:
    """One thread's connection, and when it may try to connect again."""

    def __init__(self, owner: Publishers) -> None:
        self.owner = owner
        self.publisher: Publisher | None = None
        self.backoff = 0.0
        self.retry_at = 0.0

    def publish(self, message: _Message) -> None:
        # A connection idle for a long time may be dead without pika knowing: one
        # failure on an open-looking connection earns one immediate fresh attempt.
        for fresh in (False, True):
            publisher = self.connected()
            try:
                publisher.publish(message)
                return
            except PublishError as exc:
                if publisher.is_open:
                    raise BrokerUnavailable(str(exc)) from exc  # refused: not a lost link
                self.disconnect()
                log.warning("%s", exc)
                if fresh:
                    raise BrokerUnavailable(str(exc)) from exc

    def connected(self) -> Publisher:
        if self.publisher is not None:
            return self.publisher
        now = time.monotonic()
        if now < self.retry_at:
            raise BrokerUnavailable(
                f"RabbitMQ is unreachable; next attempt in {self.retry_at - now:.1f} s"
            )
        try:
            self.publisher = self.owner._connect()
        except PublishError as exc:
            self.backoff = min(self.owner._max_backoff, max(0.5, self.backoff * 2))
            self.retry_at = time.monotonic() + self.backoff
            self.owner._went(False, str(exc))
            raise BrokerUnavailable(str(exc)) from exc
        self.owner._went(True)
        self.backoff, self.retry_at = 0.0, 0.0
        return self.publisher

    def keep_alive(self) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.keep_alive()
        except PublishError as exc:
            log.warning("%s; reconnecting on the next delivery", exc)
            self.disconnect()

    def disconnect(self) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close()
