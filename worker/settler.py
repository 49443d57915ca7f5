"""Carrying out how a failed delivery is settled (``worker.settle`` decides): republish to a
delay queue or the dead queue, put back, stop the replica, or give up the connection.

A republish is confirmed by the broker before the delivery is acked; if it fails, the
delivery stays unacked and the broker redelivers it. If the broker refuses the copy (a
full queue nacks it; one that no binding leads to returns it, every publish being
mandatory), the delivery is held by the loop and put back a little later: never acked
while no copy is in a queue, never hot-looped, and the replica goes on. A copy that no
binding takes has the loop declare the topology again first (the worker owns its
delay queues, so a binding removed by hand comes back) and is tried once more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from schemas.topology import ATTEMPT_HEADER, DELAY_HEADER, ERROR_HEADER, Topology
from worker import broker
from worker.errors import (
    AssetSyncError,
    BrokerLost,
    BrokerRefused,
    ConfigError,
    Unroutable,
    Unwritable,
)
from worker.handling import GiveUp
from worker.logs import log_context
from worker.metrics import Metrics
from worker.settle import (
    DeadLetter,
    Decision,
    Discard,
    GiveBack,
    Reconnect,
    Requeue,
    Retry,
    Stop,
    attempt_of,
    settle,
    settle_refused,
    settle_unrecorded,
)
from worker.text import printable

log = logging.getLogger("worker.consumer")


class Settler:
    """Settles the failed deliveries of one consuming loop's connection.

    :param topology: where delay queues and the dead queue are.
    :param publisher: the connection's confirming publisher.
    :param metrics: where settled deliveries are counted.
    :param on_fatal: called with a configuration error that must stop the replica.
    :param hold: keeps a delivery unacked for so many seconds, then puts it back.
    :param repair: declares the topology again (a copy came back unroutable).
    """

    def __init__(
        self,
        *,
        topology: Topology,
        publisher: broker.ConfirmPublisher,
        metrics: Metrics,
        on_fatal: Callable[[ConfigError], None],
        hold: Callable[[str, Any, float], None],
        repair: Callable[[], None],
    ) -> None:
        self.topology = topology
        self.publisher = publisher
        self.metrics = metrics
        self.on_fatal = on_fatal
        self.hold = hold
        self.repair = repair

    def failed(
        self, queue: str, message: Any, body: Any, exc: Exception, *, on_give_up: GiveUp | None
    ) -> None:
        """Settle a delivery whose handling raised ``exc``."""
        decision = settle(
            exc,
            attempt=attempt_of(message.headers, ATTEMPT_HEADER),
            delays=self.topology.retry_delays,
        )
        if isinstance(decision, DeadLetter) and decision.reason.startswith("internal error"):
            log.error("unexpected error on %s", describe(message), exc_info=exc)
        self.carry_out(queue, message, body, decision, on_give_up=on_give_up)

    def carry_out(
        self, queue: str, message: Any, body: Any, decision: Decision, *, on_give_up: GiveUp | None
    ) -> None:
        with log_context(
            message_id=message.properties.get("message_id"),
            message_type=message.delivery_info.get("routing_key"),
        ):
            self._carry_out(queue, message, body, decision, on_give_up)

    def _carry_out(
        self, queue: str, message: Any, body: Any, decision: Decision, on_give_up: GiveUp | None
    ) -> None:
        if isinstance(decision, Reconnect):
            raise BrokerLost(f"lost RabbitMQ while handling {describe(message)}")
        if isinstance(decision, Discard):
            log.warning(
                "%s not used (the dead queue keeps it): %s", describe(message), decision.reason
            )
            message.ack()
            self.metrics.messages.labels(queue, "discarded").inc()
            return
        if isinstance(decision, Requeue | Stop):
            self.metrics.messages.labels(queue, "requeued").inc()
        if isinstance(decision, Requeue):
            message.requeue()
        elif isinstance(decision, Stop):
            log.critical("%s", decision.error)
            message.requeue()
            self.on_fatal(decision.error)
        elif isinstance(decision, GiveBack):
            log.warning(
                "%s: %s; giving it back in %.0fs",
                describe(message),
                decision.reason,
                decision.after,
            )
            self.hold(queue, message, decision.after)
        elif isinstance(decision, Retry):
            log.info(
                "%s failed (%s); attempt %d in %.1fs",
                describe(message),
                printable(decision.reason, 300),
                decision.attempt,
                decision.delay,
            )
            headers = {
                ATTEMPT_HEADER: decision.attempt,
                DELAY_HEADER: self.topology.retry_key(decision.delay),
                ERROR_HEADER: printable(decision.reason, 1000),
            }
            refused = self._republish(message, self.topology.delay_exchange, headers)
            if refused is not None:
                self._carry_out(
                    queue, message, body, settle_refused(refused, wanted=decision), None
                )
                return
            self.metrics.messages.labels(queue, "retried").inc()
            self.metrics.retries.labels(queue, f"{decision.delay:g}").inc()
        else:
            self._dead_letter(queue, message, body, decision, on_give_up)

    def _dead_letter(
        self, queue: str, message: Any, body: Any, decision: DeadLetter, on_give_up: GiveUp | None
    ) -> None:
        if decision.record and body is not None and on_give_up is not None:
            try:
                on_give_up(body, decision.reason)
            except Exception as exc:  # settled below: never requeued on the spot
                log.warning("could not record the failure of %s: %r", describe(message), exc)
                unrecorded = settle_unrecorded(
                    exc,
                    reason=decision.reason,
                    attempt=attempt_of(message.headers, ATTEMPT_HEADER),
                    delays=self.topology.retry_delays,
                )
                self._carry_out(queue, message, body, unrecorded, on_give_up)
                return
        log.warning("dead-lettering %s: %s", describe(message), decision.reason)
        refused = self._republish(
            message, self.topology.dead_exchange, {ERROR_HEADER: printable(decision.reason, 1000)}
        )
        if refused is not None:
            self._carry_out(queue, message, body, settle_refused(refused, wanted=decision), None)
            return
        self.metrics.messages.labels(queue, "dead_lettered").inc()

    def _republish(
        self, message: Any, exchange: str, headers: dict[str, Any]
    ) -> BrokerRefused | None:
        """Publish the copy and ack the delivery; or, if the broker refused the copy,
        leave the delivery unacked and return the refusal. A copy that cannot be
        written at all is not sent: the delivery is rejected, and RabbitMQ dead-letters
        it as it came (this replica's log says why)."""
        try:
            copy = broker.copy_of(message, exchange=exchange, headers=headers)
            try:
                self.publisher.publish([copy])
            except Unroutable as exc:
                log.warning("%s; declaring the topology again", exc)
                self.repair()
                try:
                    self.publisher.publish([copy])
                except BrokerRefused as again:
                    return again
            except BrokerRefused as exc:
                return exc
        except Unwritable as exc:
            self._reject(message, exc, headers)
            return None
        except AssetSyncError:
            raise
        except Exception as exc:  # py-amqp could not write the copy: never the loop
            self._reject(message, exc, headers)
            return None
        message.ack()
        return None

    def _reject(self, message: Any, exc: Exception, headers: dict[str, Any]) -> None:
        log.error(
            "rejecting %s to the dead queue, as it came: a copy cannot be written (%s: %s);"
            " why it was given up on: %s",
            describe(message),
            type(exc).__name__,
            exc,
            headers.get(ERROR_HEADER, "a retry"),
        )
        message.reject(requeue=False)


def describe(message: Any) -> str:
    """A delivery, for a log line: what it carries is quoted, and cut short."""
    props = message.properties
    rk = str(message.delivery_info.get("routing_key", "?"))[:100]
    ident = props.get("message_id")
    return (
        f"{rk!r} message {str(ident)[:100]!r}"
        if ident
        else f"{rk!r} delivery {message.delivery_tag}"
    )
