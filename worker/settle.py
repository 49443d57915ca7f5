"""How a failed delivery is settled: one pure decision, made for every failure.

::

    failure ──► Reconnect   the broker connection is lost: ack nothing, reconnect;
                            the broker redelivers
            ├─► Requeue     the replica is stopping: put it back now
            ├─► Stop        a configuration error: put it back, stop the replica
            ├─► Retry       transient: republish to the delay queue of ``delay``,
                            carrying ``attempt``, then ack (a bulk request whose run
                            another replica holds, ``RunBusy``: its attempt unchanged)
            └─► DeadLetter  permanent, or out of retries: republish to the dead queue
                            with ``reason``, then ack

    republish refused ──► GiveBack  hold the delivery ``after`` seconds, then put it
                                    back: never acked unless a copy is in a queue

    a copy of a dead letter failed ──► Discard  ack it: the dead queue has the original
                                   ├─► GiveBack (transient) and the three above

``settle`` decides for a message that failed; ``settle_unrecorded`` for one whose
give-up could not be recorded in the database (a bulk run's bookkeeping);
``settle_refused`` for one whose retry or dead-letter copy the broker would not take;
``settle_copy`` for a copy of a dead letter (``worker.given_up``), which is never
republished: dead-lettering it again would bring it straight back.
Before any of them, ``hold_back`` decides whether the failure is an outage of the store
that the loop waits out instead (``worker.outages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import (
    BrokerLost,
    ConfigError,
    Interrupted,
    PermanentError,
    RunBusy,
    StoreDown,
    TransientError,
)

# Waits for the store one batch gets before its outage counts as a failure of its own.
MAX_HOLDS = 10


@dataclass(frozen=True)
class Reconnect:
    pass


@dataclass(frozen=True)
class Requeue:
    pass


@dataclass(frozen=True)
class Stop:
    error: ConfigError


@dataclass(frozen=True)
class Retry:
    delay: float
    attempt: int  # the number of the attempt the republished copy will be
    reason: str  # what failed, kept on the copy for whoever looks at the delay queue


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    record: bool = True  # tell the handler's give-up hook (a bulk run's bookkeeping)


@dataclass(frozen=True)
class GiveBack:
    after: float  # seconds the loop holds the delivery (unacked) before putting it back
    reason: str


@dataclass(frozen=True)
class Discard:
    reason: str  # why the copy was not used, for the log


Decision = Reconnect | Requeue | Stop | Retry | DeadLetter | GiveBack | Discard

# Bounds of how long a delivery whose copy was refused is held before it is put back:
# long enough not to hot-loop it, short enough that the loop's prefetch is not hoarded.
GIVE_BACK_MIN, GIVE_BACK_MAX = 5.0, 60.0


def settle(exc: BaseException, *, attempt: int, delays: tuple[float, ...]) -> Decision:
    """What to do with a message whose ``attempt``-th try raised ``exc``."""
    if isinstance(exc, BrokerLost | Interrupted | ConfigError):
        return _not_the_message(exc)
    if isinstance(exc, RunBusy):  # postponed, not failed: the attempt count stays
        return Retry(postpone_delay(delays), attempt, str(exc))
    if isinstance(exc, TransientError):
        if attempt > len(delays):
            return DeadLetter(f"gave up after {attempt} attempts: {exc}")
        return Retry(pick_delay(delays, attempt, exc.retry_after), attempt + 1, str(exc))
    if isinstance(exc, PermanentError):
        return DeadLetter(str(exc))
    return DeadLetter(f"internal error: {type(exc).__name__}: {exc}")


def settle_unrecorded(
    exc: BaseException, *, reason: str, attempt: int, delays: tuple[float, ...]
) -> Decision:
    """What to do with a message about to be dead-lettered for ``reason`` when recording
    that failed with ``exc``.

    A database that is down gets time: the message waits the longest delay and is tried
    again, its attempt count kept, so that it is given up on (and recorded) once the
    database is back. A database that refuses the record outright will refuse it every
    time: the message is dead-lettered anyway, saying why it could not be recorded.
    """
    if isinstance(exc, BrokerLost | Interrupted | ConfigError):
        return _not_the_message(exc)
    if isinstance(exc, TransientError):
        return Retry(delays[-1], attempt, f"{reason} (not recorded yet: {exc})")
    return DeadLetter(f"{reason} (not recorded in its run: {exc})", record=False)


def hold_back(exc: BaseException, *, held: int) -> bool:
    """Whether messages that failed with ``exc``, after ``held`` waits for the store
    already, are kept and handled again once the store takes writes: yes for an outage
    of the store (``StoreDown``), which is no message's fault and must not use up its
    retries, up to ``MAX_HOLDS`` times (a message that takes its database connection down
    every time gets bounded retries like any other)."""
    return isinstance(exc, StoreDown) and held < MAX_HOLDS


def settle_refused(exc: BaseException, *, wanted: Retry | DeadLetter) -> Decision:
    """What to do with a message whose ``wanted`` copy (to a delay queue, or the dead
    queue) the broker refused with ``exc``: a full queue (``reject-publish``) or one no
    binding leads to. The copy is not in any queue, so the delivery must not be acked:
    it is put back, after the retry's delay (within bounds), so that a refusal that goes
    on neither hot-loops it nor loses it. Each put-back is a delivery: one refused for
    good is dead-lettered by RabbitMQ at the queue's delivery limit."""
    if isinstance(exc, BrokerLost | Interrupted | ConfigError):
        return _not_the_message(exc)
    delay = wanted.delay if isinstance(wanted, Retry) else GIVE_BACK_MAX
    after = min(max(delay, GIVE_BACK_MIN), GIVE_BACK_MAX)
    where = "retry" if isinstance(wanted, Retry) else "dead letter"
    return GiveBack(after, f"RabbitMQ refused its {where}: {exc}")


def settle_copy(exc: BaseException | str) -> Decision:
    """What to do with a copy of a dead letter whose handling failed with ``exc`` (or
    that was refused for the reason ``exc``): a passing failure gives it back a little
    later (each give-back counts towards its queue's delivery limit, past which RabbitMQ
    drops it); anything else discards it. Never a republish."""
    if isinstance(exc, str):
        return Discard(exc)
    if isinstance(exc, BrokerLost | Interrupted | ConfigError):
        return _not_the_message(exc)
    if isinstance(exc, TransientError):
        return GiveBack(GIVE_BACK_MIN, f"not recorded yet: {exc}")
    return Discard(str(exc) if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {exc}")


def worth_splitting(exc: BaseException) -> bool:
    """Whether a batch that failed with ``exc`` should be tried one message at a time:
    yes when one bad message may have sunk it, no when every message would fail alike."""
    return not isinstance(exc, TransientError | ConfigError | Interrupted)


# Seconds a bulk request whose run another replica holds waits before it is tried again.
POSTPONE = 30.0


def postpone_delay(delays: tuple[float, ...]) -> float:
    """The delay queue a postponed request waits in: the first of at least ``POSTPONE``
    seconds, else the longest."""
    return next((d for d in delays if d >= POSTPONE), delays[-1])


def pick_delay(delays: tuple[float, ...], attempt: int, retry_after: float | None) -> float:
    """The delay before attempt ``attempt + 1``: the configured one for this attempt, or
    the first longer one when Jira asked us (``Retry-After``) to wait longer."""
    wanted = max(delays[attempt - 1], retry_after or 0.0)
    return next((d for d in delays[attempt - 1 :] if d >= wanted), delays[-1])


def attempt_of(headers: Mapping[str, Any] | None, header: str) -> int:
    """The attempt a delivery is, from its header (absent or garbled: the first)."""
    try:
        return max(1, int((headers or {}).get(header, 1)))
    except (TypeError, ValueError, OverflowError):
        return 1


def _not_the_message(exc: BaseException) -> Decision:
    if isinstance(exc, BrokerLost):
        return Reconnect()
    if isinstance(exc, ConfigError):
        return Stop(exc)
    return Requeue()
