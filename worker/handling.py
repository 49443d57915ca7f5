"""What a handler may use of the consuming loop that calls it, and what it returns.

Handlers (``login``, ``user_sync``, ``fan_out``) sit above the loop (``consumer``);
both import these types from here, so neither depends on the other's module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from worker.broker import Outgoing
from worker.errors import BrokerLost, Interrupted, PermanentError, TransientError

T = TypeVar("T")


class Loop(Protocol):
    """The loop's connection, as a handler sees it while it works."""

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish and return once the broker confirmed every message.

        :raises BrokerRefused: the broker refused some (transient).
        :raises BrokerLost: the connection is gone or unresponsive (reconnect).
        """

    def tick(self) -> None:
        """Call between steps of long work, in the loop's own thread: keeps heartbeats
        flowing, and raises ``Interrupted`` when the replica is shutting down."""

    def waiting(self, queue: str) -> int | None:
        """How many messages ``queue`` holds ready (None: there is no such queue), asked
        in the loop's own thread.

        :raises BrokerLost: the connection is gone or unresponsive (reconnect).
        """

    def sleep(self, seconds: float) -> None:
        """Wait, in any thread; raises ``Interrupted`` as soon as the replica is shutting
        down. In the loop's own thread heartbeats keep flowing meanwhile (as ``tick``);
        in any other, the connection is not touched."""


# A handler takes a batch of decoded messages and returns the failures among them, by
# index; every other message of the batch is done (committed). Raising fails them all.
Failures = Mapping[int, Exception]
Handler = Callable[[Sequence[Any], Loop], Failures]
# Records that a decoded message is being given up on (dead-lettered), with the reason.
GiveUp = Callable[[Any, str], None]


def one_by_one(
    items: Sequence[T], handle: Callable[[T], object], loop: Loop
) -> dict[int, Exception]:
    """Call ``handle`` on each item; an item that fails with an ``AssetSyncError`` of its
    own (a bad user, Jira briefly down) is reported by index and the rest go on. Errors
    that are not the item's (the broker lost, a shutdown, wrong settings) stop the loop
    and fail the whole batch, as does anything unexpected."""
    failures: dict[int, Exception] = {}
    for index, item in enumerate(items):
        if index:
            try:
                loop.tick()
            except Interrupted as exc:  # what is done stays done; the rest goes back
                failures.update((i, exc) for i in range(index, len(items)))
                break
        try:
            handle(item)
        except (PermanentError, TransientError) as exc:
            if isinstance(exc, BrokerLost):
                raise
            failures[index] = exc
    return failures
