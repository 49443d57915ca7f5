"""Sync on login, and on Jira's user events: fetch the user from Jira, map, upsert in one
transaction.

Both kinds of message only name a user; what is written is always what Jira says now,
so an event that arrives late, twice or out of order does no harm. A ``deleted`` event
is a hint: the asset is marked missing only once Jira answers 404 for the user's stable
identity (key or accountId), as at the end of a bulk run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from schemas.messages import UserChanged, UserLoggedIn, utc_now
from worker.errors import UserNotFound
from worker.handling import Failures, Loop, one_by_one
from worker.jira import JiraClient, UserRef
from worker.logs import log_context
from worker.mapping import plan_asset
from worker.metrics import Metrics
from worker.store import Change, Folders, Store, apply_plans, assets_of, mark_missing
from worker.sync_config import LiveSync, SyncConfig

log = logging.getLogger(__name__)


class LoginSync:
    """Creates a user's asset on their login, or refreshes what changed.

    :param jira: the replica's Jira client.
    :param store: the replica's asset store.
    :param folders: the replica's folder cache.
    :param sync_settings: the sync settings in force (asset type, mapping, sync on login: when
        off, login events are acknowledged and logged, not synced).
    :param metrics: where assets and login latency are counted.
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

    def handle(self, events: Sequence[UserLoggedIn | UserChanged], loop: Loop) -> Failures:
        return one_by_one(events, self.dispatch, loop)

    def dispatch(self, event: UserLoggedIn | UserChanged) -> Change | None:
        ident = event.account_id or event.user_key or event.username
        with log_context(message_type=event.type, event_id=str(event.event_id), jira_user=ident):
            if isinstance(event, UserChanged):
                return self.changed(event)
            return self.sync(event)

    def changed(self, event: UserChanged) -> Change | None:
        """A user Jira says was created, updated or deleted: synced from Jira's current
        data if Jira still has them, marked missing if it confirms they are gone."""
        ref, config = ref_of(event), self.sync_settings.current(fresh=True)
        try:
            return self._sync_ref(ref, "event", config)
        except UserNotFound:
            if ref.kind == "username":
                # A username alone proves nothing once gone (it may have been renamed).
                log.info(
                    "%s event for username %r, which Jira no longer has; no key to"
                    " confirm it by, nothing marked",
                    event.change,
                    event.username,
                )
                return None
            with self.store.transaction() as conn:
                scheme = config.scheme
                marked = mark_missing(conn, scheme, assets_of(conn, scheme, [ref.value]))
            log.info(
                "%s event: Jira has no user %s %r; %d asset(s) marked missing",
                event.change,
                ref.kind,
                ref.value,
                len(marked),
            )
            return None

    def sync(self, event: UserLoggedIn) -> Change | None:
        ref, config = ref_of(event), self.sync_settings.current(fresh=True)
        if not config.sync_on_login:
            log.info("sync on login is off: not syncing %s %r", ref.kind, ref.value)
            return None
        change = self._sync_ref(ref, "login", config)
        latency = (utc_now() - event.occurred_at).total_seconds()
        if latency >= 0:  # a producer's clock may run ahead
            self.metrics.login_latency.observe(latency)
        return change

    def _sync_ref(self, ref: UserRef, why: str, config: SyncConfig) -> Change:
        # The snapshot time is taken before asking Jira, so it never claims to be newer
        # than the data it carries, and on the database's clock, which every replica
        # shares.
        seen_at = self.store.now()
        user = self.jira.fetch_user(ref, with_groups=config.needs_groups)
        plan = plan_asset(user, config.rules, seen_at=seen_at)
        with self.store.transaction() as conn:
            change = apply_plans(conn, config.scheme, [plan], folders=self.folders)[user.jira_id]
        self.metrics.assets.labels(why, change.outcome).inc()
        log.info(
            "%s of %r: asset %s %s (%s)",
            why,
            ref.value,
            change.asset_id,
            change.outcome,
            "/".join(plan.folder),
        )
        return change


def ref_of(event: UserLoggedIn | UserChanged) -> UserRef:
    """How to ask Jira for the event's user: by its stable identity (accountId, user key)
    when the event has one, else by username."""
    if event.account_id:
        return UserRef("account_id", event.account_id)
    if event.user_key:
        return UserRef("user_key", event.user_key)
    assert event.username  # the models guarantee an identifier
    return UserRef("username", event.username)
