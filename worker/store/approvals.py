"""Approvals to mark missing what a run found gone (``missing_approvals``): the console
records one, a worker replica claims it with a lease and settles the run's waiting
users a batch at a time, each batch in the transaction that marks its assets.

The lease fences the work: a batch is written only by the replica whose claim is in
force when it commits (the approval's row is locked and checked first), so two
replicas never both count or mark a user, and a replica that stopped (or lost its
lease while Jira kept it waiting) leaves nothing half done for the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from worker.errors import LostClaim

ERROR_CHARS = 500  # a pause's reason, or one user's failure, as shown on the page


@dataclass(frozen=True)
class Approval:
    """One row of ``missing_approvals``: what the run's page shows of an approval."""

    id: int
    run_id: UUID
    approved_by: str
    approved_at: datetime
    waiting: int
    claimed_by: str | None
    claimed_until: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    checked: int
    marked: int
    came_back: int
    failed: int
    last_error: str | None
    held: bool  # a replica's lease is in force now (by the database's clock)


_COLUMNS = ", ".join(n for n in Approval.__dataclass_fields__ if n != "held") + (
    ", claimed_by IS NOT NULL AND claimed_until >= now() AS held"
)


def approve(
    conn: psycopg.Connection[Any], run_id: UUID, *, by: str, waiting: int
) -> Approval | None:
    """Record an administrator's approval (None: the run has an open one already, which
    goes on: a second click, or a second administrator, joins it)."""
    with conn.cursor(row_factory=class_row(Approval)) as cur:
        return cur.execute(
            "INSERT INTO missing_approvals (run_id, approved_by, waiting) VALUES (%s, %s, %s)"
            f" ON CONFLICT (run_id) WHERE finished_at IS NULL DO NOTHING RETURNING {_COLUMNS}",
            [run_id, by, waiting],
        ).fetchone()


def latest(conn: psycopg.Connection[Any], run_id: UUID) -> Approval | None:
    """The run's newest approval, open or finished."""
    with conn.cursor(row_factory=class_row(Approval)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM missing_approvals WHERE run_id = %s ORDER BY id DESC LIMIT 1",
            [run_id],
        ).fetchone()


def claim(conn: psycopg.Connection[Any], *, replica: str, lease: float) -> Approval | None:
    """Take the oldest open approval nobody holds (or this replica held), for ``lease``
    seconds; None when there is none to take."""
    with conn.cursor(row_factory=class_row(Approval)) as cur:
        return cur.execute(
            "UPDATE missing_approvals SET claimed_by = %(me)s,"
            "   claimed_until = now() + make_interval(secs => %(lease)s),"
            "   started_at = COALESCE(started_at, now())"
            " WHERE id = (SELECT id FROM missing_approvals WHERE finished_at IS NULL"
            "   AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = %(me)s)"
            "   ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_COLUMNS}",
            {"me": replica, "lease": lease},
        ).fetchone()


def hold(conn: psycopg.Connection[Any], approval_id: int, *, replica: str, lease: float) -> None:
    """Renew the lease, in the caller's transaction, whose writes then stand or fall
    with it (the row stays locked until it commits).

    :raises LostClaim: another replica holds it now, or it was finished.
    """
    row = conn.execute(
        "UPDATE missing_approvals SET claimed_until = now() + make_interval(secs => %s)"
        " WHERE id = %s AND claimed_by = %s AND finished_at IS NULL RETURNING id",
        [lease, approval_id, replica],
    ).fetchone()
    if row is None:
        raise LostClaim(f"approval {approval_id} is no longer held by {replica}")


def waiting_users(
    conn: psycopg.Connection[Any], approval: Approval, *, limit: int
) -> list[tuple[str, int]]:
    """(Jira identity, asset id) of run users this approval has not settled yet: not
    marked, not back, not failed under it (a failure under an older one is asked again)."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT jira_id, asset_id FROM sync_run_missing"
            " WHERE run_id = %s AND NOT marked AND NOT came_back"
            "   AND approval_id IS DISTINCT FROM %s"
            " ORDER BY jira_id LIMIT %s",
            [approval.run_id, approval.id, limit],
        )
    ]


def still_active(conn: psycopg.Connection[Any], asset_ids: Sequence[int]) -> set[int]:
    """Those of the assets that are active: among assets a batch meant to mark, the ones
    a login synced meanwhile (``mark_missing`` left them alone)."""
    if not asset_ids:
        return set()
    return {
        r[0]
        for r in conn.execute(
            "SELECT id FROM assets WHERE id = ANY(%s) AND sync_state = 'active'", [list(asset_ids)]
        )
    }


def settle(
    conn: psycopg.Connection[Any],
    approval: Approval,
    *,
    marked: Sequence[str],
    came_back: Sequence[str],
    failed: Mapping[str, str],
) -> None:
    """Record what a batch did to each user (in the transaction that marked them), and
    the approval's counts; a pause's reason is cleared."""
    every = [*marked, *came_back, *failed]
    if not every:
        return
    conn.execute(
        "UPDATE sync_run_missing m SET approval_id = %(id)s,"
        "   marked = m.marked OR s.outcome = 'marked',"
        "   came_back = m.came_back OR s.outcome = 'came back',"
        "   failure = s.failure"
        " FROM unnest(%(ids)s::text[], %(outcomes)s::text[], %(failures)s::text[])"
        "   AS s (jira_id, outcome, failure)"
        " WHERE m.run_id = %(run)s AND m.jira_id = s.jira_id",
        {
            "id": approval.id,
            "run": approval.run_id,
            "ids": every,
            "outcomes": [
                *(["marked"] * len(marked)),
                *(["came back"] * len(came_back)),
                *(["failed"] * len(failed)),
            ],
            "failures": [
                *([None] * (len(marked) + len(came_back))),
                *(reason[:ERROR_CHARS] for reason in failed.values()),
            ],
        },
    )
    conn.execute(
        "UPDATE missing_approvals SET checked = checked + %s, marked = marked + %s,"
        " came_back = came_back + %s, failed = failed + %s, last_error = NULL WHERE id = %s",
        [len(every), len(marked), len(came_back), len(failed), approval.id],
    )


def pause(
    conn: psycopg.Connection[Any], approval_id: int, *, replica: str, error: str, seconds: float
) -> None:
    """Let go of the approval for ``seconds`` (nobody takes it before), saying why."""
    conn.execute(
        "UPDATE missing_approvals SET claimed_by = NULL, last_error = %s,"
        " claimed_until = now() + make_interval(secs => %s)"
        " WHERE id = %s AND claimed_by = %s AND finished_at IS NULL",
        [error[:ERROR_CHARS], seconds, approval_id, replica],
    )


def release(conn: psycopg.Connection[Any], approval_id: int, *, replica: str) -> None:
    """Let go of the approval now (a replica stopping): another takes it at once."""
    conn.execute(
        "UPDATE missing_approvals SET claimed_by = NULL, claimed_until = NULL"
        " WHERE id = %s AND claimed_by = %s AND finished_at IS NULL",
        [approval_id, replica],
    )


def finish(conn: psycopg.Connection[Any], approval_id: int) -> Approval:
    """Close the approval (its lease held in this transaction); returns its final row."""
    with conn.cursor(row_factory=class_row(Approval)) as cur:
        row = cur.execute(
            "UPDATE missing_approvals SET finished_at = now(), claimed_by = NULL,"
            f" claimed_until = NULL, last_error = NULL WHERE id = %s RETURNING {_COLUMNS}",
            [approval_id],
        ).fetchone()
    assert row is not None, "finish() after hold() in the same transaction"
    return row


def failures(
    conn: psycopg.Connection[Any], run_id: UUID, *, limit: int | None
) -> list[tuple[str, int, str]]:
    """(Jira identity, asset id, failure) of the run's users an approval could not ask
    Jira about, by identity."""
    return [
        (r[0], r[1], r[2] or "")
        for r in conn.execute(
            "SELECT jira_id, asset_id, failure FROM sync_run_missing"
            " WHERE run_id = %s AND failure IS NOT NULL AND NOT marked AND NOT came_back"
            " ORDER BY jira_id" + (" LIMIT %s" if limit is not None else ""),
            [run_id, limit] if limit is not None else [run_id],
        )
    ]
