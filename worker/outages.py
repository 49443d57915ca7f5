"""An outage of the asset store is waited out, not charged to the messages in hand.

A failover or switchover makes the database refuse writes for seconds to minutes (a
read-only primary, a standby, a server shutting down, no server at all). That is not the
fault of the messages a loop holds: retried through the delay queues, they would use up
their retries (1 s + 5 s + 30 s + 2 min + 10 min) on an outage that outlasts them and be
dead-lettered for a passing cause. So when a handler fails with ``StoreDown`` the loop
keeps those deliveries (unacked), asks the store every 0.25 s, doubling to every 1 s,
whether it takes writes again, from a thread of its own while the loop's thread keeps
the broker connection's heartbeats flowing, and then handles again what failed because
of it, its attempt count unchanged. What the batch had done already stays done.

A message that takes the store down for its own reason (one that kills its database
connection every time, say) is not held for ever: after ``settle.MAX_HOLDS`` waits for one
batch, its failures are settled like any transient failure (bounded retries, then the
dead queue). A replica stopping meanwhile puts the held deliveries back.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.errors import Interrupted, StoreDown
from worker.handling import Failures, Handler, Loop
from worker.settle import hold_back

log = logging.getLogger("worker.consumer")

PROBE_DELAYS = (0.25, 0.5, 1.0)  # between two questions to the store; then the last
KEEP_ALIVE_EVERY = 0.25  # seconds between heartbeats while a question is out


def handle_through_outages(
    handle: Handler,
    bodies: Sequence[Any],
    loop: Loop,
    *,
    takes_writes: Callable[[], bool],
) -> Failures:
    """``handle(bodies, loop)``, with each outage of the store it meets waited out and
    the messages it failed handled again.

    :param takes_writes: asks the store whether it takes writes (may block; it is called
        in a thread of its own).
    :raises: what ``handle`` raises, but ``StoreDown`` only past ``MAX_HOLDS`` waits.
    """
    todo = list(range(len(bodies)))  # indexes into ``bodies`` still to be handled
    failures: dict[int, Exception] = {}
    held = 0
    while True:
        try:
            found = dict(handle([bodies[i] for i in todo], loop))
        except StoreDown as exc:
            if not hold_back(exc, held=held):
                raise
            found = dict.fromkeys(range(len(todo)), exc)
        down = {j: f for j, f in found.items() if isinstance(f, StoreDown)}
        failures.update((todo[j], f) for j, f in found.items() if j not in down)
        outage = next(iter(down.values()), None)
        if outage is None or not hold_back(outage, held=held):
            failures.update((todo[j], f) for j, f in down.items())
            return failures
        todo = [todo[j] for j in sorted(down)]
        held += 1
        try:
            wait_for_store(outage, len(todo), loop, takes_writes=takes_writes)
        except Interrupted as exc:  # the replica stops: the held deliveries go back
            failures.update((i, exc) for i in todo)
            return failures


def wait_for_store(
    outage: StoreDown, count: int, loop: Loop, *, takes_writes: Callable[[], bool]
) -> None:
    """Return once the store takes writes again; heartbeats flow meanwhile.

    :raises Interrupted: the replica is stopping.
    """
    held = f"{count} deliver{'y' if count == 1 else 'ies'}"
    log.warning("%s; holding %s until the asset store takes writes again", outage, held)
    started = time.monotonic()
    for asked in itertools.count():
        delay = PROBE_DELAYS[min(asked, len(PROBE_DELAYS) - 1)]
        _wait(delay, loop)
        if _ask(takes_writes, loop):
            break
    log.info(
        "the asset store takes writes again after %.1fs; handling the %s again",
        time.monotonic() - started,
        held,
    )


def _wait(seconds: float, loop: Loop) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        loop.tick()
        loop.sleep(min(left, KEEP_ALIVE_EVERY))
    loop.tick()


def _ask(takes_writes: Callable[[], bool], loop: Loop) -> bool:
    """``takes_writes()`` in a thread of its own: a question to a database that does not
    answer may take its deadline, and the broker connection must not starve meanwhile."""
    answer: list[bool] = []
    done = threading.Event()

    def ask() -> None:
        try:
            answer.append(takes_writes())
        except Exception:  # any failure to answer is a no
            answer.append(False)
        finally:
            done.set()

    threading.Thread(target=ask, name="store-probe", daemon=True).start()
    while not done.wait(KEEP_ALIVE_EVERY):
        loop.tick()
    return answer[0]
