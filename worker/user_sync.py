"""The per-user messages of bulk runs: a batch of Jira snapshots, one transaction."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from schemas.messages import JiraUser, UserSync
from worker.errors import BrokerLost, InvalidMessage, PermanentError, TransientError
from worker.given_up import GivenUp
from worker.handling import Failures, Loop
from worker.jira import JiraClient, UserRef
from worker.mapping import AssetPlan, plan_asset
from worker.metrics import Metrics
from worker.store import Folders, Store, apply_plans, runs
from worker.store.preview import record_preview
from worker.sync_config import LiveSync, SyncConfig

log = logging.getLogger(__name__)


class _NotAllOpen(Exception):
    """Some user of a batch written without ``still_open`` was not open: roll back."""


class UserSyncBatch:
    """Applies a batch of ``user-sync`` snapshots and counts them in their runs.

    :param jira: asked only when a mapped field needs what listing pages lack (groups).
    :param store: the replica's asset store.
    :param folders: the replica's folder cache.
    :param sync_settings: the sync settings in force (asset type, mapping), read once per batch.
    :param metrics: where assets and finished runs are counted.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        folders: Folders,
        sync_settings: LiveSync,
        metrics: Metrics,
    ) -> None:
        self.jira = jira
        self.store = store
        self.folders = folders
        self.sync_settings = sync_settings
        self.metrics = metrics
        self._runs_seen: set[UUID] = set()

    def handle(self, messages: Sequence[UserSync], loop: Loop) -> Failures:
        """Sync the batch in one transaction.

        Only users their run matched and has not settled are written, and only while the
        run is open: a message for anyone else is refused, a repeat of a settled one
        skipped. A snapshot never claims to be newer than its arrival. A user whose
        groups Jira would not give fails alone: a Jira fault costs one retry, not a batch's.
        """
        # A run requested after a settings change is synced with it, on every replica:
        # the first batch of a run this replica has not seen looks at the newest version.
        new_runs = {m.run_id for m in messages} - self._runs_seen
        self._runs_seen = (self._runs_seen | new_runs) if len(self._runs_seen) < 1000 else new_runs
        # The clock the fan-out stamped the snapshots with: the database's.
        received = self.store.now()
        config = self.sync_settings.current(fresh=bool(new_runs))
        failures: dict[int, Exception] = {}
        late: set[int] = set()
        if config.needs_groups:  # Jira is asked between two transactions, never inside one
            with self.store.transaction() as conn:
                wanted = self._wanted(conn, messages, failures, late)
            users = self._completed(messages, wanted, failures)
            with self.store.transaction() as conn:
                assets = self._apply(conn, config, messages, users, received, late)
        else:
            try:
                # Every user of a batch is open while its run goes on: written and
                # settled in one go, each looked up once (record_outcomes_if_open).
                with self.store.transaction() as conn:
                    users = {i: m.user for i, m in enumerate(messages)}
                    assets = self._apply(conn, config, messages, users, received, late, open_=True)
            except _NotAllOpen:  # rolled back: a repeat, a late user, or a run that ended
                with self.store.transaction() as conn:
                    wanted = self._wanted(conn, messages, failures, late)
                    users = {i: messages[i].user for i in wanted}
                    assets = self._apply(conn, config, messages, users, received, late)
        for (source, outcome), n in assets.items():
            self.metrics.assets.labels(source, outcome).inc(n)
        # Every run the batch touched, skipped users included: a batch that committed
        # and then failed to close its run is retried, finds its users settled, and
        # closes the run now (the run watch, worker.run_watch, is the backstop).
        self._finish({m.run_id for m in messages})
        return failures

    def _apply(
        self,
        conn: psycopg.Connection[Any],
        config: SyncConfig,
        messages: Sequence[UserSync],
        users: dict[int, JiraUser],
        received: datetime,
        late: set[int],
        *,
        open_: bool = False,
    ) -> Counter[tuple[str, str]]:
        """Write the users' assets and settle them in their runs; returns the assets by
        source and outcome, for the metrics once committed.

        :param open_: the users were not checked with ``still_open``: raise
            ``_NotAllOpen`` (the caller's transaction then rolls back) unless every one
            of them was open.
        """
        by_run: dict[tuple[UUID, bool, bool], list[AssetPlan]] = defaultdict(list)
        assets: Counter[tuple[str, str]] = Counter()
        for index, user in users.items():
            m = messages[index]
            seen_at = min(m.fetched_at, received)
            plan = plan_asset(user, config.rules, seen_at=seen_at)
            by_run[m.run_id, m.dry_run, index in late].append(plan)
        for (run_id, dry_run, is_late), plans in by_run.items():
            changes = apply_plans(conn, config.scheme, plans, folders=self.folders, dry_run=dry_run)
            if is_late:
                n = runs.record_late_outcomes(conn, run_id, changes.values())
                log.info("%d users of run %s applied after the stall bound ended it", n, run_id)
                continue
            if not open_:
                runs.record_outcomes(conn, run_id, changes.values())
            elif not runs.record_outcomes_if_open(conn, run_id, list(changes.values())):
                raise _NotAllOpen
            if dry_run:  # what each user's asset would become, for the console's preview
                shown = {u.jira_id: u for u in users.values()}
                record_preview(conn, run_id, [(c, shown[c.jira_id]) for c in changes.values()])
            source = "bulk dry run" if dry_run else "bulk"
            assets.update((source, c.outcome) for c in changes.values())
        return assets

    def _completed(
        self, messages: Sequence[UserSync], wanted: list[int], failures: dict[int, Exception]
    ) -> dict[int, JiraUser]:
        users = {}
        for index in wanted:
            try:
                users[index] = self._complete(messages[index].user)
            except (PermanentError, TransientError) as exc:
                if isinstance(exc, BrokerLost):
                    raise
                failures[index] = exc
        return users

    def _wanted(
        self,
        conn: psycopg.Connection[Any],
        messages: Sequence[UserSync],
        failures: dict[int, Exception],
        late: set[int],
    ) -> list[int]:
        """Indexes of the messages to apply; the refused ones are added to ``failures``,
        those of users the stall bound counted failed to ``late`` (and applied: a late
        message of a real run is a snapshot like any other, never a dead letter)."""
        by_run: dict[UUID, list[int]] = defaultdict(list)
        for index, m in enumerate(messages):
            by_run[m.run_id].append(index)
        wanted = []
        for run_id, indexes in by_run.items():
            ids = [messages[i].user.jira_id for i in indexes]
            open_ids = runs.still_open(conn, run_id, ids)
            done = runs.settled(conn, run_id, ids) if len(open_ids) < len(ids) else {}
            for i in indexes:
                jira_id = messages[i].user.jira_id
                if jira_id in open_ids:
                    wanted.append(i)
                elif done.get(jira_id) and not messages[i].dry_run:
                    log.info("user %r of run %s comes after the stall bound", jira_id, run_id)
                    wanted.append(i)
                    late.add(i)
                elif jira_id in done:
                    log.info("user %r of run %s is settled already; skipped", jira_id, run_id)
                else:
                    failures[i] = InvalidMessage(
                        f"run {run_id} is not open or did not match user {jira_id!r}"
                    )
        return wanted

    def failed(self, message: UserSync, reason: str) -> None:
        """Count a user the run gave up on."""
        with self.store.transaction() as conn:
            runs.record_failures(conn, message.run_id, [(message.user.jira_id, reason)])
        self._finish({message.run_id})

    def given_up(self, copies: Sequence[GivenUp], loop: Loop) -> Failures:
        """Count each user whose message was given up on, by a worker or by RabbitMQ
        itself (``worker.given_up``), as failed in its run with the reason, once (a user
        settled already keeps its outcome); then check those runs. Only signed copies
        get here (the route checks the signature before decoding)."""
        by_run: dict[UUID, list[tuple[str, str]]] = defaultdict(list)
        for copy in copies:
            by_run[copy.message.run_id].append((copy.message.user.jira_id, copy.reason))
        with self.store.transaction() as conn:
            for run_id, failed in by_run.items():
                runs.record_failures(conn, run_id, failed)
        self._finish(set(by_run))
        return {}

    def _finish(self, run_ids: set[UUID]) -> None:
        # After the commit, so that the last batch of a run sees every other batch's.
        with self.store.connection() as conn:
            for run_id, state in runs.finish_runs(conn, run_ids):
                self.metrics.runs.labels(state).inc()
                log.info("bulk run %s %s", run_id, state)

    def _complete(self, user: JiraUser) -> JiraUser:
        # Listing pages carry no groups; fetch them only when a mapped field needs them.
        if user.groups is not None:
            return user
        ref = UserRef("account_id" if user.account_id else "user_key", user.jira_id)
        return self.jira.fetch_user(ref, with_groups=True)
