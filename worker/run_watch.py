"""Every bulk run ends: a watch, in every worker replica, over the runs still open.

A run is closed by the batch that settles its last user (``worker.user_sync``). When
that cannot happen, this watch ends it:

* a run whose every user is settled but that is still ``processing`` (the closing
  update failed after the last batch committed) is closed at the next look;
* a run that makes no progress for ``ASSETSYNC_RUN_STALL_AFTER`` seconds ends
  ``failed``: each user it left open is counted failed, with the reason (a per-user
  message lost, a fan-out whose request RabbitMQ dead-lettered). Progress is any move
  of any open run's counters, or a replica holding a run's lock (a scan in progress, or
  its look-ups of the users gone): a run whose messages wait behind another run's in
  the queue does not stall while that one moves.

Each replica keeps its own idle clocks (``IdleClocks``), started when it first sees a
run and restarted by any progress or any look that failed: a replica that just started,
or an asset store that was away, never ends a run on a stale observation. The looks are
cheap (the runs' counter rows and ``pg_locks``) and harmless to repeat on every replica:
ending a run is one transaction that first checks the run is still where it was seen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from worker.errors import TransientError
from worker.metrics import Metrics
from worker.store import Store, runs
from worker.store.runs import OpenRun

log = logging.getLogger(__name__)


class IdleClocks:
    """How long the open runs have gone without progress, as one replica saw it.

    :param stall_after: seconds without progress after which a run is stalled.
    """

    def __init__(self, *, stall_after: float) -> None:
        self.stall_after = stall_after
        self._marks: dict[UUID, int] = {}
        self._since: float | None = None  # when the last progress was seen

    def observe(self, open_runs: Sequence[OpenRun], now: float) -> list[tuple[OpenRun, float]]:
        """Take a look at the open runs; return those stalled, with how long they have
        been idle. Any progress (a new run, a moved mark, a lock held) restarts every
        clock."""
        marks = {r.id: r.mark for r in open_runs}
        moved = any(r.locked or self._marks.get(r.id) != r.mark for r in open_runs)
        self._marks = marks
        if moved or self._since is None:
            self._since = now
            return []
        idle = now - self._since
        return [(r, idle) for r in open_runs if idle > self.stall_after]

    def forget(self) -> None:
        """A look failed: what happened meanwhile is unknown, so the clocks start again."""
        self._marks.clear()
        self._since = None


def look_every(stall_after: float) -> float:
    """Seconds between two looks: a sixth of the bound (a stall is called at most that
    late), within 1 and 30 seconds."""
    return min(30.0, max(1.0, stall_after / 6))


class RunWatch:
    """Closes complete runs and ends stalled ones (see the module docstring).

    :param store: the replica's asset store.
    :param metrics: where ended runs are counted.
    :param stall_after: ``ASSETSYNC_RUN_STALL_AFTER``.
    :param every: seconds between two looks (default: ``look_every(stall_after)``).
    :param clock: ``time.monotonic`` or a stand-in.
    """

    def __init__(
        self,
        *,
        store: Store,
        metrics: Metrics,
        stall_after: float,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clocks = IdleClocks(stall_after=stall_after)
        self.every = look_every(stall_after) if every is None else every
        self.clock = clock

    def follow(self, stop: threading.Event) -> None:
        """Look every ``every`` seconds until ``stop``."""
        while not stop.wait(self.every):
            try:
                self.look()
            except TransientError as exc:  # the store is away: the next look may work
                self.clocks.forget()
                log.warning("could not look at the open bulk runs (%s)", exc)
            except Exception:  # never let the thread die silently
                self.clocks.forget()
                log.exception("looking at the open bulk runs failed")

    def look(self) -> None:
        with self.store.connection() as conn:
            open_runs = runs.watch_open_runs(conn)
            complete = [r.id for r in open_runs if r.complete]
            for run_id, state in runs.finish_runs(conn, complete):
                self.metrics.runs.labels(state).inc()
                log.info("bulk run %s %s (closed by the run watch)", run_id, state)
        stalled = self.clocks.observe([r for r in open_runs if r.id not in complete], self.clock())
        for run, idle in stalled:
            with self.store.transaction() as conn:
                left = runs.end_stalled(conn, run, idle=idle, bound=self.clocks.stall_after)
            if left is None:
                continue
            self.metrics.runs.labels("failed").inc()
            self.metrics.stalled_runs.inc()
            log.warning(
                "bulk run %s stalled: no progress for %.0f s while %s; ended failed,"
                " %d users it left open counted failed",
                run.id,
                idle,
                run.state,
                left,
            )
