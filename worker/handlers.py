"""What each message type does: fetch from Jira, map, upsert in one transaction.

Handlers return after the transaction has committed; the consumer acks only then.
"""

from __future__ import annotations

import logging

from schemas.messages import UserLoggedIn, utc_now
from worker.jira import JiraClient, UserRef
from worker.mapping import MappingRules, plan_asset
from worker.store import Change, Scheme, Store

log = logging.getLogger(__name__)


class Syncer:
    """Turns messages into asset changes.

    :param jira: the replica's Jira client.
    :param store: the replica's asset store.
    :param scheme: the asset type being synced, checked against the settings at start.
    :param rules: folder and field mapping rules.
    :param sync_on_login: when off, login events are acknowledged and logged, not synced.
    """

    def __init__(
        self,
        *,
        jira: JiraClient,
        store: Store,
        scheme: Scheme,
        rules: MappingRules,
        sync_on_login: bool,
    ) -> None:
        self.jira = jira
        self.store = store
        self.scheme = scheme
        self.rules = rules
        self.sync_on_login = sync_on_login
        self.needs_groups = "groups" in rules.field_map

    def login(self, event: UserLoggedIn) -> Change | None:
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


def _ref(event: UserLoggedIn) -> UserRef:
    if event.account_id:
        return UserRef("account_id", event.account_id)
    if event.user_key:
        return UserRef("user_key", event.user_key)
    assert event.username  # the model guarantees exactly one identifier
    return UserRef("username", event.username)
