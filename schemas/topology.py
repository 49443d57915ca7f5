"""The broker topology, defined once and declared by both the worker (kombu) and the
producers (pika).

::

    producers ──► exchange "assetsync" (topic, routing key = message type)
                    │ user-logged-in ──────► queue assetsync.login
                    │ user-changed ────────► queue assetsync.login (as urgent as a login)
                    │ bulk-sync-requested ─► queue assetsync.bulk
                    │ user-sync ───────────► queue assetsync.user-sync
                    └ no binding (unknown type) ─► alternate exchange ─► assetsync.dead

    worker, transient failure ─► exchange assetsync.delay (headers: assetsync-delay-ms)
                                   └► one of assetsync.retry.<ms>ms (TTL) ─► back to "assetsync"
    worker, gave up / poison ──► exchange assetsync.dead ─► queue assetsync.dead
    RabbitMQ, delivery limit ──┘   (fanout)     │            (header x-assetsync-error,
                                                │             or x-death, says why)
                                                └► exchange assetsync.dead.by-type (topic)
                                                     └ user-sync ─► queue
                                                       assetsync.user-sync.given-up

Logins, bulk requests and the per-user messages of bulk runs have queues of their own,
so a large bulk run never makes a login wait behind it. All queues are quorum queues
(replicated, at-least-once dead lettering). RabbitMQ before 4.0 has no default delivery
limit, so one is set: a message that keeps crashing consumers ends in the dead queue.

Workers read the copies in ``assetsync.user-sync.given-up`` to count each user of a
bulk run whose message was given up on (by a worker, or by RabbitMQ itself at the
delivery limit) as failed in the run, then drop the copy: ``assetsync.dead`` keeps
every dead letter for operators. Like the delay queues, it is the workers' own.

Delay queues are chosen by a header that does not start with ``x-``: RabbitMQ's headers
exchange leaves ``x-`` headers out of matching, so a binding on one matches every
message. Versions before 0.2 did exactly that (exchange ``assetsync.retry``, header
``x-assetsync-retry-ms``) and copied each retry into every delay queue;
``legacy_retry_bindings`` names what the worker removes from such a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.messages import BULK_SYNC_REQUESTED, USER_CHANGED, USER_LOGGED_IN, USER_SYNC

ERROR_HEADER = "x-assetsync-error"
ATTEMPT_HEADER = "x-assetsync-attempt"
DELAY_HEADER = "assetsync-delay-ms"
LEGACY_RETRY_HEADER = "x-assetsync-retry-ms"
DELIVERY_LIMIT = 20
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0)


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]
    bindings: tuple[Binding, ...]


@dataclass(frozen=True)
class Topology:
    """Names and arguments of every exchange and queue, under one name prefix.

    :param prefix: the common name prefix; tests use their own to stay isolated.
    :param retry_delays: seconds to wait before each further attempt of a message that
        failed transiently; after the last one it is dead-lettered.
    """

    prefix: str = "assetsync"
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS

    @property
    def exchange(self) -> str:
        return self.prefix

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def given_up_exchange(self) -> str:
        """Every dead letter again, by message type (bound to ``dead_exchange``)."""
        return f"{self.prefix}.dead.by-type"

    @property
    def given_up_queue(self) -> str:
        """Copies of the dead-lettered ``user-sync`` messages, for the workers."""
        return f"{self.prefix}.user-sync.given-up"

    @property
    def delay_exchange(self) -> str:
        return f"{self.prefix}.delay"

    @property
    def legacy_retry_exchange(self) -> str:
        """Where retries went before 0.2 (see the module docstring)."""
        return f"{self.prefix}.retry"

    @property
    def login_queue(self) -> str:
        return f"{self.prefix}.login"

    @property
    def bulk_queue(self) -> str:
        return f"{self.prefix}.bulk"

    @property
    def user_sync_queue(self) -> str:
        return f"{self.prefix}.user-sync"

    @staticmethod
    def retry_key(delay: float) -> str:
        return str(round(delay * 1000))

    def retry_queue(self, delay: float) -> str:
        return f"{self.prefix}.retry.{self.retry_key(delay)}ms"

    def exchanges(self) -> list[ExchangeSpec]:
        return [
            ExchangeSpec(self.dead_exchange, "fanout"),
            ExchangeSpec(self.exchange, "topic", {"alternate-exchange": self.dead_exchange}),
            ExchangeSpec(self.delay_exchange, "headers"),
            ExchangeSpec(self.given_up_exchange, "topic"),
        ]

    def exchange_bindings(self) -> list[tuple[str, Binding]]:
        """(destination exchange, its binding to a source exchange), declared by the
        workers: every dead letter also reaches ``given_up_exchange``."""
        return [(self.given_up_exchange, Binding(self.dead_exchange))]

    def queues(self, *, retry: bool = True) -> list[QueueSpec]:
        """Every queue; ``retry=False`` leaves out the workers' own: the delay queues
        (only the worker knows its retry delays) and the given-up queue."""
        work = {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            **self._dead_letter_to(self.dead_exchange),
        }
        specs = [
            QueueSpec(self.dead_queue, {"x-queue-type": "quorum"}, (Binding(self.dead_exchange),)),
            QueueSpec(
                self.login_queue,
                work,
                (Binding(self.exchange, USER_LOGGED_IN), Binding(self.exchange, USER_CHANGED)),
            ),
            QueueSpec(self.bulk_queue, work, (Binding(self.exchange, BULK_SYNC_REQUESTED),)),
            QueueSpec(self.user_sync_queue, work, (Binding(self.exchange, USER_SYNC),)),
        ]
        if retry:
            # Copies only (the dead queue has the dead letter): no dead-letter target, so
            # one that keeps failing is dropped at the delivery limit.
            specs.append(
                QueueSpec(
                    self.given_up_queue,
                    {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT},
                    (Binding(self.given_up_exchange, USER_SYNC),),
                )
            )
        for delay in self.retry_delays if retry else ():
            # Expired messages go back to the main exchange under their original
            # routing key, so one set of delay queues serves every work queue.
            match = {"x-match": "all", DELAY_HEADER: self.retry_key(delay)}
            args = {
                "x-queue-type": "quorum",
                "x-message-ttl": round(delay * 1000),
                **self._dead_letter_to(self.exchange),
            }
            specs.append(
                QueueSpec(self.retry_queue(delay), args, (Binding(self.delay_exchange, "", match),))
            )
        return specs

    @staticmethod
    def _dead_letter_to(exchange: str) -> dict[str, Any]:
        # at-least-once dead lettering needs reject-publish overflow (RabbitMQ docs).
        return {
            "x-dead-letter-exchange": exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def legacy_retry_bindings(self, delays: tuple[float, ...]) -> list[tuple[str, Binding]]:
        """The bindings versions before 0.2 made from ``legacy_retry_exchange`` to the
        delay queue of each of ``delays``: each of them matches every message."""
        return [
            (
                self.retry_queue(delay),
                Binding(
                    self.legacy_retry_exchange,
                    "",
                    {"x-match": "all", LEGACY_RETRY_HEADER: self.retry_key(delay)},
                ),
            )
            for delay in delays
        ]
