"""Approving a mass change: the assets a run found gone but did not mark, because more
were gone than ``ASSETSYNC_MISSING_LIMIT`` allows, marked missing once an administrator
confirms, each only after Jira is asked again (a user who came back since is left
alone, and so is one Jira cannot answer for now).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from worker.errors import JiraRejected, TransientError, UserNotFound
from worker.jira import JiraClient, RefKind, UserRef
from worker.settings import Settings
from worker.store import Store, mark_missing
from worker.store.console_reads import RunRow
from worker.store.run_missing import pending, settle_approved
from worker.store.sync_settings import audit, load_settings
from worker.sync_config import build

PER_TRANSACTION = 100


@dataclass
class Approved:
    marked: list[str] = field(default_factory=list)
    came_back: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)  # Jira could not say now: not marked

    def described(self) -> dict[str, Any]:
        return {
            "marked": self.marked[:100],
            "came back": self.came_back[:100],
            "not confirmed": self.unsure[:100],
        }


def approvable(run: RunRow | None, waiting: int) -> bool:
    """A real run that ended failed with assets found gone and left unmarked."""
    return run is not None and run.state == "failed" and not run.dry_run and waiting > 0


def mark_approved(
    *, store: Store, jira: JiraClient, env: Settings, run_id: UUID, actor: str
) -> Approved:
    """Look each waiting user up again and mark the assets of those Jira says are gone,
    a batch at a time, each batch audited in the transaction that marks it."""
    with store.transaction() as conn:
        waiting = pending(conn, run_id)
        scheme = build(conn, env, load_settings(conn)).scheme
    kind: RefKind = "account_id" if jira.flavor == "cloud" else "user_key"
    done = Approved()
    for start in range(0, len(waiting), PER_TRANSACTION):
        batch = Approved()
        asked_at = store.now()  # the clock Jira snapshots are stamped with (jira_seen_at)
        gone: list[int] = []
        for jira_id, asset_id in waiting[start : start + PER_TRANSACTION]:
            try:
                jira.fetch_user(UserRef(kind, jira_id))
            except UserNotFound:
                gone.append(asset_id)
                batch.marked.append(jira_id)
            except (TransientError, JiraRejected):
                batch.unsure.append(jira_id)
            else:
                batch.came_back.append(jira_id)
        with store.transaction() as conn:
            # An asset synced since Jira was asked (a login found its user) stays too.
            mark_missing(conn, scheme, gone, seen_before=asked_at)
            settle_approved(conn, run_id, marked=batch.marked, came_back=batch.came_back)
            audit(
                conn,
                actor=actor,
                action="marked missing (approved)",
                subject=str(run_id),
                new=batch.described(),
            )
        done.marked += batch.marked
        done.came_back += batch.came_back
        done.unsure += batch.unsure
    return done
