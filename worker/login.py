"""Sync on login: fetch the user from Jira, map, upsert in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from schemas.messages import UserLoggedIn, utc_now
from worker.jira import JiraClient, UserRef
from worker.mapping import MappingRules, plan_asset
from worker.session import Failures, Session, one_by_one
from worker.store import Change, Folders, Scheme, Store, apply_plans

log = logging.getLogger(__name__)


class LoginSync:
    """Creates a user's asset on their login, or refreshes what changed.

    :param jira: the replica's Jira client.
    :param store: the replica's asset store.
    :param folders: the replica's folder cache.
    :param scheme: the asset type being synced, checked against the settings at start.
    :param rules: folder and field mapping rules.
    :param enabled: when off, login events are acknowledged and logged, not synced.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        folders: Folders,
        scheme: Scheme,
        rules: MappingRules,
        enabled: bool,
    ) -> None:
        self.jira = jira
        self.store = store
        self.folders = folders
        self.scheme = scheme
        self.rules = rules
        self.enabled = enabled
        self.needs_groups = "groups" in rules.field_map

    def handle(self, events: Sequence[UserLoggedIn], session: Session) -> Failures:
        return one_by_one(events, self.sync, session)

    def sync(self, event: UserLoggedIn) -> Change | None:
        ref = ref_of(event)
        if not self.enabled:
            log.info("sync on login is off: not syncing %s %r", ref.kind, ref.value)
            return None
        # The snapshot time is taken before asking Jira, so it never claims to be newer
        # than the data it carries.
        seen_at = utc_now()
        user = self.jira.fetch_user(ref, with_groups=self.needs_groups)
        plan = plan_asset(user, self.rules, seen_at=seen_at)
        with self.store.transaction() as conn:
            change = apply_plans(conn, self.scheme, [plan], folders=self.folders)[user.jira_id]
        log.info(
            "login of %r: asset %s %s (%s)",
            ref.value,
            change.asset_id,
            change.outcome,
            "/".join(plan.folder),
        )
        return change


def ref_of(event: UserLoggedIn) -> UserRef:
    if event.account_id:
        return UserRef("account_id", event.account_id)
    if event.user_key:
        return UserRef("user_key", event.user_key)
    assert event.username  # the model guarantees exactly one identifier
    return UserRef("username", event.username)
