"""Approving a mass change: the assets a run found gone but did not mark, because more
were gone than ``ASSETSYNC_MISSING_LIMIT`` allows, marked missing once an administrator
confirms. The console only records the approval; a worker replica carries it out in
the background (``worker/approvals.py``), each user looked up in Jira again first, and
the run's page follows it. What the page says of an approval is decided here.
"""

from __future__ import annotations

from worker.store.approvals import Approval
from worker.store.console_reads import RunRow


def approvable(run: RunRow | None, waiting: int, latest: Approval | None) -> bool:
    """A real run that ended failed with assets found gone and left unmarked, and no
    approval of it under way."""
    return (
        run is not None
        and run.state == "failed"
        and not run.dry_run
        and waiting > 0
        and (latest is None or latest.finished_at is not None)
    )


def state(approval: Approval) -> str:
    """Where an approval stands, in a word or two: the page's and the script's."""
    if approval.finished_at is not None:
        return "done"
    if approval.last_error:
        return "paused"
    if approval.held:
        return "marking"
    return "waiting for a worker"


def summary(approval: Approval) -> str:
    """One sentence: what the approval has done so far, and what it waits for."""
    counts = (
        f"{approval.marked} marked missing, {approval.came_back} came back,"
        f" {approval.failed} failed"
    )
    where = state(approval)
    if where == "done":
        return f"Done: {counts}."
    if where == "paused":
        return (
            f"Paused after {approval.checked} of {approval.waiting} users ({counts}):"
            f" {approval.last_error}; a worker tries again shortly."
        )
    if where == "marking":
        return f"Marking: {approval.checked} of {approval.waiting} users looked up ({counts})."
    if approval.checked:
        return (
            f"Waiting for a worker to go on after {approval.checked} of {approval.waiting}"
            f" users ({counts})."
        )
    return "Waiting for a worker to take it (each looks for approvals every 5 seconds)."
