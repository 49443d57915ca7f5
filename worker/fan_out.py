"""A bulk run's request: scan Jira's directory and fan it out, one message per user."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg

from schemas.messages import BulkSyncRequested, user_sync_bodies
from worker.broker import Outgoing
from worker.directory import Checkpoint, Filters, read_ahead, scan
from worker.errors import PermanentError, RunBusy, StoreDown, StoreUnavailable
from worker.handling import Failures, Loop
from worker.jira import JiraClient, Patience
from worker.logs import log_context
from worker.metrics import Metrics
from worker.missing import MissingUsers
from worker.signing import Signer, signed_user_syncs
from worker.store import Store, locks, runs
from worker.store.pool import translate_errors
from worker.sync_config import LiveSync

log = logging.getLogger(__name__)

# Seconds a redelivered request waits for a dead replica's run lock: more than the
# ~25 s PostgreSQL takes to drop the connection of a replica whose host died (store.pool).
RUN_LOCK_WAIT = 40.0
PRUNE_CHUNK = 20_000  # per-user rows of an old run deleted per transaction
# Pages after which the run's table gets fresh statistics (see runs.analyze).
ANALYZE_AT_PAGES = frozenset({1, 10, 100, 1000, 10_000})
ROOM_POLL = 0.25  # seconds between two looks at the user-sync queue while the scan waits
# Seconds the queue may stay over the bound without draining at all before the scan goes
# on unbounded: with no one consuming, the run must reach its stall bound, not wait here.
ROOM_PATIENCE = 60.0


class FanOut:
    """Turns a ``bulk-sync-requested`` into a tracked run and its per-user messages.

    :param jira: the replica's Jira client; the scan waits out Jira's transient
        failures (``patience``) instead of failing the run.
    :param store: the replica's asset store.
    :param sync_settings: the sync settings in force: at the end of a scan, the asset type whose
        assets' users may be gone, whether to mark them missing, and the limit.
    :param exchange: where per-user messages are published.
    :param queue: the queue they wait in, watched to keep the scan at most ``ahead``
        messages in front of the workers (0: unbounded).
    :param page_size: users asked of Jira per page.
    :param patience: waits between repeated Jira requests, and their total.
    :param signer: signs the per-user messages, which workers trust only signed.
    :param metrics: where finished runs are counted.
    :param retention_days: ended runs' per-user rows older than this are deleted.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        sync_settings: LiveSync,
        exchange: str,
        queue: str,
        ahead: int,
        page_size: int,
        patience: tuple[float, ...],
        signer: Signer,
        metrics: Metrics,
        retention_days: float = 30.0,
    ) -> None:
        self.jira = jira
        self.store = store
        self.sync_settings = sync_settings
        self.exchange = exchange
        self.queue = queue
        self.ahead = ahead
        self.page_size = page_size
        self.patience = patience
        self.signer = signer
        self.metrics = metrics
        self.retention_days = retention_days

    def handle(self, requests: Sequence[BulkSyncRequested], loop: Loop) -> Failures:
        for request in requests:
            with log_context(run_id=str(request.request_id), message_type=request.type):
                self._fan_out(request, loop)
        return {}

    def failed(self, request: BulkSyncRequested, reason: str) -> None:
        """Record that the request is given up on: the run fails with the reason."""
        with self.store.transaction() as conn:
            runs.open_run(conn, request)
            runs.fail_run(conn, request.request_id, reason)
        self.metrics.runs.labels("failed").inc()

    def _fan_out(self, request: BulkSyncRequested, loop: Loop) -> None:
        with self.store.connection() as lock:
            if not self._wait_for_run_lock(lock, request.request_id, loop):
                # Never acked while that replica scans: it may have lost its broker
                # connection (its own delivery is then this one) and fail yet. Tried
                # again later, retries kept, until the run ends or the lock is free.
                with self.store.connection() as conn:
                    state = runs.state_of(conn, request.request_id)
                if state in (None, "fanning_out", "processing"):
                    raise RunBusy(
                        f"bulk run {request.request_id} is {state or 'starting'} and another replica"
                        " holds its run lock; its request is postponed"
                    )
                log.info("bulk run %s is %s; nothing to fan out", request.request_id, state)
                return
            try:
                # Read under the lock: a replica that just finished has moved it on.
                with self.store.transaction() as conn:
                    run = runs.open_run(conn, request)
                if run.joined:
                    log.info(
                        "bulk request %s joins run %s, open for the same filters (%s):"
                        " nothing more to scan",
                        request.request_id,
                        run.id,
                        run.state,
                    )
                    return
                if run.state != "fanning_out":
                    log.info("bulk run %s is already %s; nothing to fan out", run.id, run.state)
                    # A request retried because closing its run failed closes it now.
                    self._finish(run.id)
                    return
                self._prune_old_runs(loop)
                # Every page is published only while this connection holds the run lock.
                self._scan_and_publish(request, run, _Locked(loop, lock, run.id))
            except PermanentError as exc:
                with self.store.transaction() as conn:
                    runs.fail_run(conn, request.request_id, str(exc))
                raise
            finally:
                if not lock.closed:
                    locks.unlock_run(lock, request.request_id)

    def _prune_old_runs(self, loop: Loop) -> None:
        """Delete the per-user rows of runs that ended over ``retention_days`` ago, a
        chunk per transaction, before a new run adds its own: the table stays the size
        of the recent runs. Their counts, and so their summaries, stay."""
        with self.store.transaction() as conn:
            old = runs.runs_to_prune(conn, older_than_days=self.retention_days)
        for run_id in old:
            deleted = PRUNE_CHUNK
            while deleted == PRUNE_CHUNK:
                loop.tick()
                with self.store.transaction() as conn:
                    deleted = runs.prune_users(conn, run_id, chunk=PRUNE_CHUNK)
            log.info(
                "per-user rows of bulk run %s pruned (older than %g days)",
                run_id,
                self.retention_days,
            )

    def _wait_for_run_lock(self, conn: psycopg.Connection[Any], run_id: UUID, loop: Loop) -> bool:
        """Take the run's lock, waiting up to ``RUN_LOCK_WAIT`` seconds for it.

        When a replica dies mid-scan, RabbitMQ hands its request to another, but
        PostgreSQL frees the dead replica's lock only once its backend notices: a
        moment later if the process died, up to ~25 s if the whole host did. Giving
        up at the first try would drop the only copy of the request and leave the run
        fanning out forever. A replica that still holds the lock after that may be
        alive and scanning, or have lost its broker connection (its delivery is then
        this one) and be about to fail: the caller postpones the request (``RunBusy``),
        never acks it while the run is open.
        """
        deadline = time.monotonic() + RUN_LOCK_WAIT
        while not locks.try_lock_run(conn, run_id):
            if time.monotonic() > deadline:
                return False
            loop.tick()
            loop.sleep(0.2)
        return True

    def _scan_and_publish(self, request: BulkSyncRequested, run: runs.Run, loop: Loop) -> None:
        # What the run matches is what was stored when it started, whatever the message
        # that resumed it says.
        filters = Filters(prefix=run.username_prefix, groups=run.groups)
        log.info("bulk run %s: scanning Jira%s", run.id, " (resuming)" if run.checkpoint else "")
        # Jira's pages are read in a thread of their own; a page Jira fails to give is
        # asked for again there after a wait, while this thread keeps the broker
        # connection alive. Each failure costs one repeated request, never a rescan.
        jira = self.jira.with_patience(Patience(delays=self.patience, sleep=loop.sleep))
        published = 0
        confirmed: Checkpoint | None = None  # after the last page published, not saved yet
        pages = scan(
            jira,
            filters,
            page_size=self.page_size,
            checkpoint=run.checkpoint,
            clock=self.store.now,  # the snapshots' stamps: the database's clock
        )
        bounded = self.ahead > 0
        for number, page in enumerate(read_ahead(pages, idle=loop.tick), start=1):
            loop.tick()
            if bounded:
                bounded = wait_for_room(loop, self.queue, self.ahead, run_id=run.id)
            with self.store.transaction() as conn:
                if confirmed is not None:
                    runs.save_checkpoint(conn, run.id, confirmed)
                todo = runs.add_matched(conn, run.id, [u.jira_id for u in page.users])
                runs.add_rejected(conn, run.id, page.rejected)
            if number in ANALYZE_AT_PAGES:
                with self.store.connection() as conn:
                    runs.analyze(conn)
            # Recorded, then published, then checkpointed (with the next page's users):
            # after a crash in between, the page is read again and its users still open
            # are published again. Duplicates are harmless; a gap would not be.
            bodies = user_sync_bodies(
                run_id=run.id,
                dry_run=run.dry_run,
                fetched_at=page.fetched_at,
                users=[user for user in page.users if user.jira_id in todo],
            )
            loop.publish(signed_user_syncs(bodies, exchange=self.exchange, signer=self.signer))
            confirmed = page.checkpoint
            published += len(todo)
        log.info("bulk run %s: %d users fanned out", run.id, published)
        unfiltered = not filters.prefix and not filters.groups
        config = self.sync_settings.current(fresh=True)
        missing = MissingUsers(
            store=self.store,
            scheme=config.scheme,
            exchange=self.exchange,
            mark=config.mark_missing,
            limit=config.missing_limit,
            signer=self.signer,
        )
        missing.end_fan_out(
            run.id, jira=jira, dry_run=run.dry_run, unfiltered=unfiltered, loop=loop
        )
        self._finish(run.id)

    def _finish(self, run_id: UUID) -> None:
        with self.store.connection() as conn:
            for ended, state in runs.finish_runs(conn, [run_id]):
                self.metrics.runs.labels(state).inc()
                log.info("bulk run %s %s", ended, state)


def wait_for_room(
    loop: Loop,
    queue: str,
    ahead: int,
    *,
    run_id: UUID,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Wait while ``queue`` holds more than ``ahead`` messages ready: a scan runs far
    ahead of the workers (a page costs it a fraction of what storing it costs them), and
    unbounded, a run of millions would wait in RabbitMQ whole, in its memory and on its
    disk. Returns whether to go on bounding: not once the queue has stayed over the bound
    for ``ROOM_PATIENCE`` seconds without draining (no one consumes it; the rest of the
    scan is published as it comes, and the run's stall bound judges the run)."""
    lowest, since = None, clock()
    while (ready := loop.waiting(queue)) is not None and ready > ahead:
        if lowest is None or ready < lowest:
            lowest, since = ready, clock()
        elif clock() - since > ROOM_PATIENCE:
            log.warning(
                "bulk run %s: %d messages have waited in %s for %.0f s with none taken;"
                " the scan goes on without waiting for the workers",
                run_id,
                ready,
                queue,
                ROOM_PATIENCE,
            )
            return False
        log.debug("bulk run %s: %d messages wait in %s (bound %d)", run_id, ready, queue, ahead)
        loop.sleep(ROOM_POLL)
    return True


class _Locked:
    """The loop, for a fan-out: each publish is made only once the connection that took
    the run lock is checked to hold it still.

    The lock lives on one pooled connection. When that connection ends (killed with
    ``pg_terminate_backend``, cut off, or its server failed over), PostgreSQL frees the
    lock at once, and the replica that holds a copy of the request, or gets it next,
    takes the lock and resumes from the checkpoint. This replica must then stop before
    its next page: the check fails (``StoreDown`` for a connection that is gone), the scan
    ends, and the request is handled again from the checkpoint, here or there.
    """

    def __init__(self, loop: Loop, lock: psycopg.Connection[Any], run_id: UUID) -> None:
        self._loop, self._lock, self._run_id = loop, lock, run_id

    def publish(self, messages: Sequence[Outgoing]) -> None:
        try:
            with translate_errors():
                held = locks.holds_run_lock(self._lock, self._run_id)
        except StoreDown as exc:
            raise StoreDown(
                f"bulk run {self._run_id}: the connection that holds its run lock is gone"
                f" ({exc}); the scan stops"
            ) from exc
        if not held:
            raise StoreUnavailable(
                f"bulk run {self._run_id}: this replica no longer holds the run lock;"
                " the scan stops (it goes on from its checkpoint)"
            )
        self._loop.publish(messages)

    def tick(self) -> None:
        self._loop.tick()

    def sleep(self, seconds: float) -> None:
        self._loop.sleep(seconds)

    def waiting(self, queue: str) -> int | None:
        return self._loop.waiting(queue)
