"""What the run's page says of an approval to mark missing, and when one may be given
(pure: no server)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from console.approval import approvable, state, summary
from worker.store.approvals import Approval
from worker.store.console_reads import RunRow

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

APPROVAL = Approval(
    id=1,
    run_id=uuid.uuid4(),
    approved_by="ann",
    approved_at=NOW,
    waiting=300,
    claimed_by=None,
    claimed_until=None,
    started_at=None,
    finished_at=None,
    checked=0,
    marked=0,
    came_back=0,
    failed=0,
    last_error=None,
    held=False,
)


def test_the_page_says_in_one_sentence_where_an_approval_stands():
    assert state(APPROVAL) == "waiting for a worker"
    assert summary(APPROVAL).startswith("Waiting for a worker to take it")
    going = replace(APPROVAL, claimed_by="w1:7", held=True, checked=100, marked=90, came_back=9)
    assert (state(going), summary(going)) == (
        "marking",
        "Marking: 100 of 300 users looked up (90 marked missing, 9 came back, 0 failed).",
    )
    paused = replace(going, claimed_by=None, held=False, last_error="Jira answered 503")
    assert state(paused) == "paused"
    assert summary(paused) == (
        "Paused after 100 of 300 users (90 marked missing, 9 came back, 0 failed):"
        " Jira answered 503; a worker tries again shortly."
    )
    orphaned = replace(going, held=False)  # its replica died: the lease lapsed
    assert summary(orphaned).startswith("Waiting for a worker to go on after 100 of 300")
    done = replace(going, finished_at=NOW, checked=300, marked=280, came_back=19, failed=1)
    assert summary(done) == "Done: 280 marked missing, 19 came back, 1 failed."


def test_a_run_is_approvable_once_at_a_time():
    run = RunRow(
        run_id=APPROVAL.run_id,
        state="failed",
        dry_run=False,
        requested_by="cron",
        requested_at=NOW,
        username_prefix=None,
        groups=[],
        error="over the limit",
        matched=10,
        created=0,
        updated=0,
        unchanged=10,
        deactivated=0,
        missing=300,
        failed=0,
        done=10,
        started_at=NOW,
        finished_at=NOW,
        duration_s=1.0,
    )
    assert approvable(run, 300, None)
    assert not approvable(run, 300, APPROVAL)  # one under way
    assert approvable(run, 1, replace(APPROVAL, finished_at=NOW))  # one Jira refused: again
    assert not approvable(replace(run, dry_run=True), 300, None)
    assert not approvable(replace(run, state="done"), 300, None)
    assert not approvable(run, 0, None)
