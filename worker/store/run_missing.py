"""Which assets a run found gone (``sync_run_missing``): what its page lists, and what an
administrator may approve marking when the run stopped at the missing limit."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

import psycopg


def record_gone(
    conn: psycopg.Connection[Any],
    run_id: UUID,
    gone: Sequence[tuple[int, str]],
    *,
    marked: Collection[int],
) -> None:
    """The assets (id, Jira identity) whose users Jira confirmed gone in the run, and
    which of them the run marked missing; recorded once however often the end of the
    scan is repeated (a redelivered request)."""
    if not gone:
        return
    done = set(marked)
    conn.execute(
        "INSERT INTO sync_run_missing (run_id, jira_id, asset_id, marked)"
        " SELECT %s, j, a, m FROM unnest(%b::text[], %b::bigint[], %b::bool[]) AS g (j, a, m)"
        " ON CONFLICT (run_id, jira_id) DO UPDATE SET marked = sync_run_missing.marked OR excluded.marked",
        [run_id, [j for _, j in gone], [a for a, _ in gone], [a in done for a, _ in gone]],
    )


def pending(conn: psycopg.Connection[Any], run_id: UUID) -> list[tuple[str, int]]:
    """(Jira identity, asset id) of the assets the run found gone and did not mark: what
    an administrator may approve marking (a run stopped at the missing limit)."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT jira_id, asset_id FROM sync_run_missing"
            " WHERE run_id = %s AND NOT marked AND NOT came_back ORDER BY jira_id",
            [run_id],
        )
    ]


def settle_approved(
    conn: psycopg.Connection[Any],
    run_id: UUID,
    *,
    marked: Sequence[str],
    came_back: Sequence[str],
) -> None:
    """Record what an approval did: assets marked, users Jira had again (no longer
    waiting)."""
    conn.execute(
        "UPDATE sync_run_missing SET marked = marked OR jira_id = ANY(%s),"
        " came_back = came_back OR jira_id = ANY(%s)"
        " WHERE run_id = %s AND jira_id = ANY(%s)",
        [list(marked), list(came_back), run_id, [*marked, *came_back]],
    )
