"""The per-user messages of bulk runs: a batch of Jira snapshots, one transaction."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from schemas.messages import JiraUser, UserSync
from worker import runs
from worker.errors import BrokerLost, PermanentError, TransientError
from worker.jira import JiraClient, UserRef
from worker.mapping import AssetPlan, MappingRules, plan_asset
from worker.session import Failures, Session
from worker.store import Folders, Scheme, Store, apply_plans

log = logging.getLogger(__name__)


class UserSyncBatch:
    """Applies a batch of ``user-sync`` snapshots and counts them in their runs.

    :param jira: asked only when a mapped field needs what listing pages lack (groups).
    :param store: the replica's asset store.
    :param folders: the replica's folder cache.
    :param scheme: the asset type being synced.
    :param rules: folder and field mapping rules.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        folders: Folders,
        scheme: Scheme,
        rules: MappingRules,
    ) -> None:
        self.jira = jira
        self.store = store
        self.folders = folders
        self.scheme = scheme
        self.rules = rules
        self.needs_groups = "groups" in rules.field_map

    def handle(self, messages: Sequence[UserSync], session: Session) -> Failures:
        """Sync the batch in one transaction. A user whose groups Jira would not give
        fails alone: the others go on, so a Jira fault costs one retry, not a batch's."""
        failures: dict[int, Exception] = {}
        by_run: dict[tuple[UUID, bool], list[AssetPlan]] = defaultdict(list)
        for index, m in enumerate(messages):
            try:
                user = self._complete(m.user)
            except (PermanentError, TransientError) as exc:
                if isinstance(exc, BrokerLost):
                    raise
                failures[index] = exc
                continue
            by_run[m.run_id, m.dry_run].append(plan_asset(user, self.rules, seen_at=m.fetched_at))
        if not by_run:
            return failures
        with self.store.transaction() as conn:
            for (run_id, dry_run), plans in by_run.items():
                changes = apply_plans(
                    conn, self.scheme, plans, folders=self.folders, dry_run=dry_run
                )
                runs.record_outcomes(conn, run_id, changes.values())
        self._finish({run_id for run_id, _ in by_run})
        return failures

    def failed(self, message: UserSync, reason: str) -> None:
        """Count a user the run gave up on."""
        with self.store.transaction() as conn:
            runs.record_failures(conn, message.run_id, [(message.user.jira_id, reason)])
        self._finish({message.run_id})

    def _finish(self, run_ids: set[UUID]) -> None:
        # After the commit, so that the last batch of a run sees every other batch's.
        with self.store.connection() as conn:
            for run_id in runs.finish_runs(conn, run_ids):
                log.info("bulk run %s done", run_id)

    def _complete(self, user: JiraUser) -> JiraUser:
        # Listing pages carry no groups; fetch them only when a mapped field needs them.
        if not self.needs_groups or user.groups is not None:
            return user
        ref = UserRef("account_id" if user.account_id else "user_key", user.jira_id)
        return self.jira.fetch_user(ref, with_groups=True)
