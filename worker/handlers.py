"""What each message type does: fetch from Jira, map, upsert in one transaction.

Handlers return after their transaction has committed; the consumer acks only then.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from schemas.messages import (
    USER_SYNC,
    BulkSyncRequested,
    JiraUser,
    UserLoggedIn,
    UserSync,
    user_sync_bodies,
    utc_now,
)
from worker import runs
from worker.broker import Outgoing
from worker.consumer import Session
from worker.directory import Checkpoint, Filters, read_ahead, scan
from worker.errors import PermanentError
from worker.jira import JiraClient, UserRef
from worker.mapping import MappingRules, plan_asset
from worker.missing import MissingUsers
from worker.settings import DEFAULT_MISSING_LIMIT, MissingLimit
from worker.store import Change, Scheme, Store

log = logging.getLogger(__name__)

# Seconds a redelivered request waits for a dead replica's run lock: more than the
# ~25 s PostgreSQL takes to drop the session of a replica whose host died (store.py).
RUN_LOCK_WAIT = 40.0


class Syncer:
    """Turns messages into asset changes.

    :param jira: the replica's Jira client.
    :param store: the replica's asset store.
    :param scheme: the asset type being synced, checked against the settings at start.
    :param rules: folder and field mapping rules.
    :param sync_on_login: when off, login events are acknowledged and logged, not synced.
    :param exchange: where per-user messages of bulk runs are published.
    :param page_size: users asked of Jira per page in a bulk scan.
    :param mark_missing: for unfiltered runs, mark assets whose Jira user is gone.
    :param missing_limit: the most assets one run may mark missing.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        scheme: Scheme,
        rules: MappingRules,
        sync_on_login: bool,
        exchange: str = "assetsync",
        page_size: int = 1000,
        mark_missing: bool = True,
        missing_limit: MissingLimit = DEFAULT_MISSING_LIMIT,
    ) -> None:
        self.jira = jira
        self.store = store
        self.scheme = scheme
        self.rules = rules
        self.sync_on_login = sync_on_login
        self.exchange = exchange
        self.page_size = page_size
        self.mark_missing = mark_missing
        self.needs_groups = "groups" in rules.field_map
        self.missing = MissingUsers(
            jira=jira,
            store=store,
            scheme=scheme,
            exchange=exchange,
            mark=mark_missing,
            limit=missing_limit,
        )

    # -- sync on login -------------------------------------------------------------------

    def login(self, events: Sequence[UserLoggedIn], session: Session) -> None:
        for event in events:
            self._login(event)

    def _login(self, event: UserLoggedIn) -> Change | None:
        ref = _ref(event)
        if not self.sync_on_login:
            log.info("sync on login is off: not syncing %s %s", ref.kind, ref.value)
            return None
        # The snapshot time is taken before asking Jira, so it never claims to be newer
        # than the data it carries.
        seen_at = utc_now()
        user = self.jira.fetch_user(ref, with_groups=self.needs_groups)
        plan = plan_asset(user, self.rules, seen_at=seen_at)
        with self.store.transaction() as conn:
            change = self.store.apply_plans(conn, self.scheme, [plan])[user.jira_id]
        log.info(
            "login of %s: asset %s %s (%s)",
            ref.value,
            change.asset_id,
            change.outcome,
            "/".join(plan.folder),
        )
        return change

    # -- bulk: one user's snapshot -------------------------------------------------------

    def user_sync(self, messages: Sequence[UserSync], session: Session) -> None:
        """Sync a batch of snapshots in one transaction and count them in their runs."""
        by_run: dict[tuple[UUID, bool], list[UserSync]] = defaultdict(list)
        for m in messages:
            by_run[m.run_id, m.dry_run].append(m)
        plans = {
            key: [
                plan_asset(self._complete(m.user), self.rules, seen_at=m.fetched_at) for m in batch
            ]
            for key, batch in by_run.items()
        }
        with self.store.transaction() as conn:
            for (run_id, dry_run), run_plans in plans.items():
                changes = self.store.apply_plans(conn, self.scheme, run_plans, dry_run=dry_run)
                runs.record_outcomes(conn, run_id, changes.values())
        self._finish_runs({run_id for run_id, _ in plans})

    def _finish_runs(self, run_ids: set[UUID]) -> None:
        # After the commit, so that the last batch of a run sees every other batch's.
        with self.store.connection() as conn:
            for run_id in sorted(run_ids):
                if runs.finish_if_complete(conn, run_id):
                    log.info("bulk run %s done", run_id)

    def _complete(self, user: JiraUser) -> JiraUser:
        # Listing pages carry no groups; fetch them only when a mapped field needs them.
        if not self.needs_groups or user.groups is not None:
            return user
        ref = UserRef("account_id" if user.account_id else "user_key", user.jira_id)
        return self.jira.fetch_user(ref, with_groups=True)

    def user_sync_failed(self, message: UserSync, reason: str) -> None:
        with self.store.transaction() as conn:
            runs.record_failures(conn, message.run_id, [(message.user.jira_id, reason)])
        self._finish_runs({message.run_id})

    # -- bulk: the request ---------------------------------------------------------------

    def fan_out(self, requests: Sequence[BulkSyncRequested], session: Session) -> None:
        for request in requests:
            self._fan_out(request, session)

    def _fan_out(self, request: BulkSyncRequested, session: Session) -> None:
        with self.store.connection() as lock:
            if not self._wait_for_run_lock(lock, request.request_id, session):
                # That replica's own delivery is redelivered should it die.
                log.info("bulk run %s is being fanned out by another replica", request.request_id)
                return
            try:
                # Read under the lock: a replica that just finished has moved it on.
                with self.store.transaction() as conn:
                    run = runs.open_run(conn, request)
                if run.state != "fanning_out":
                    log.info("bulk run %s is already %s; nothing to fan out", run.id, run.state)
                    return
                self._scan_and_publish(request, run, session)
            except PermanentError as exc:
                with self.store.transaction() as conn:
                    runs.fail_run(conn, request.request_id, str(exc))
                raise
            finally:
                runs.unlock_run(lock, request.request_id)

    def _wait_for_run_lock(
        self, conn: psycopg.Connection[Any], run_id: UUID, session: Session
    ) -> bool:
        """Take the run's lock, waiting up to ``RUN_LOCK_WAIT`` seconds for it.

        When a replica dies mid-scan, RabbitMQ hands its request to another, but
        PostgreSQL frees the dead replica's lock only once its backend notices: a
        moment later if the process died, up to ~25 s if the whole host did. Giving
        up at the first try would drop the only copy of the request and leave the run
        fanning out forever. A replica that is alive and scanning holds the lock longer
        than that; then its own delivery is the one that counts.
        """
        deadline = time.monotonic() + RUN_LOCK_WAIT
        while not runs.try_lock_run(conn, run_id):
            if time.monotonic() > deadline:
                return False
            session.tick()
            time.sleep(0.2)
        return True

    def _scan_and_publish(
        self, request: BulkSyncRequested, run: runs.Run, session: Session
    ) -> None:
        filters = Filters(prefix=request.username_prefix, groups=tuple(request.groups))
        log.info("bulk run %s: scanning Jira%s", run.id, " (resuming)" if run.checkpoint else "")
        published = 0
        confirmed: Checkpoint | None = None  # after the last page published, not saved yet
        pages = scan(self.jira, filters, page_size=self.page_size, checkpoint=run.checkpoint)
        for page in read_ahead(pages):
            session.tick()
            with self.store.transaction() as conn:
                if confirmed is not None:
                    runs.save_checkpoint(conn, run.id, confirmed)
                todo = runs.add_matched(conn, run.id, [u.jira_id for u in page.users])
            # Recorded, then published, then checkpointed (with the next page's users):
            # after a crash in between, the page is read again and its users still open
            # are published again. Duplicates are harmless; a gap would not be.
            bodies = user_sync_bodies(
                run_id=request.request_id,
                dry_run=request.dry_run,
                fetched_at=page.fetched_at,
                users=[user for user in page.users if user.jira_id in todo],
            )
            session.publish(
                [Outgoing(body=b, exchange=self.exchange, routing_key=USER_SYNC) for b in bodies]
            )
            confirmed = page.checkpoint
            published += len(todo)
        log.info("bulk run %s: %d users fanned out", run.id, published)
        unfiltered = not filters.prefix and not filters.groups
        self.missing.end_fan_out(
            run.id, dry_run=request.dry_run, unfiltered=unfiltered, session=session
        )
        self._finish_runs({run.id})

    def fan_out_failed(self, request: BulkSyncRequested, reason: str) -> None:
        with self.store.transaction() as conn:
            runs.open_run(conn, request)
            runs.fail_run(conn, request.request_id, reason)


def _ref(event: UserLoggedIn) -> UserRef:
    if event.account_id:
        return UserRef("account_id", event.account_id)
    if event.user_key:
        return UserRef("user_key", event.user_key)
    assert event.username  # the model guarantees exactly one identifier
    return UserRef("username", event.username)
