"""What the console reads from the asset store: the asset types it may sync into, runs
page by page, and a run's own users (failed, marked missing).

Every query here answers in the same time whatever the size of a run: a run's counts are
its counter rows (``sync_run_counts``), the failed users come from a partial index of
the rows with an error, and pages are keyset pages (no ``OFFSET``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from worker.store.scheme import FieldDef, user_fields


@dataclass(frozen=True)
class AssetTypeDef:
    id: int
    name: str
    fields: tuple[FieldDef, ...]

    @property
    def user_field(self) -> FieldDef | None:
        found = user_fields(self.fields)
        return found[0] if found else None


@dataclass(frozen=True)
class RunRow:
    """One row of ``sync_run_summary``: what the console shows of a run."""

    run_id: UUID
    state: str
    dry_run: bool
    requested_by: str
    requested_at: datetime
    username_prefix: str | None
    groups: list[str]
    error: str | None
    matched: int
    created: int
    updated: int
    unchanged: int
    deactivated: int
    missing: int
    failed: int
    done: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float


_RUN_COLUMNS = ", ".join(RunRow.__dataclass_fields__)


def asset_types(conn: psycopg.Connection[Any]) -> list[AssetTypeDef]:
    """Every asset type with its fields, by name."""
    types: dict[int, tuple[str, list[FieldDef]]] = {}
    for type_id, type_name, *field in conn.execute(
        "SELECT t.id, t.name, f.id, f.name, f.field_type, f.is_unique"
        " FROM asset_types t LEFT JOIN asset_fields f ON f.asset_type_id = t.id"
        " ORDER BY t.name, f.id"
    ):
        _, fields = types.setdefault(type_id, (type_name, []))
        if field[0] is not None:
            fields.append(FieldDef(*field))
    return [AssetTypeDef(i, name, tuple(fields)) for i, (name, fields) in types.items()]


def recent_runs(
    conn: psycopg.Connection[Any], *, limit: int, before: UUID | None = None
) -> list[RunRow]:
    """Runs newest first, ``limit`` of them, starting after run ``before`` (paging)."""
    with conn.cursor(row_factory=class_row(RunRow)) as cur:
        # The page's runs are chosen on sync_runs (an index scan) before the view sums
        # their counters.
        return cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM sync_run_summary WHERE run_id IN ("
            "  SELECT id FROM sync_runs r WHERE %(before)s::uuid IS NULL"
            "     OR (r.started_at, r.id) < (SELECT started_at, id FROM sync_runs"
            "                                WHERE id = %(before)s)"
            "  ORDER BY r.started_at DESC, r.id DESC LIMIT %(limit)s)"
            " ORDER BY started_at DESC, run_id DESC",
            {"before": before, "limit": limit},
        ).fetchall()


def run(conn: psycopg.Connection[Any], run_id: UUID) -> RunRow | None:
    with conn.cursor(row_factory=class_row(RunRow)) as cur:
        return cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM sync_run_summary WHERE run_id = %s", [run_id]
        ).fetchone()


def failed_users(
    conn: psycopg.Connection[Any], run_id: UUID, *, limit: int | None
) -> Iterator[tuple[str, str]]:
    """(Jira identity, reason) of the run's failed users, by identity; all of them when
    ``limit`` is None (a server-side cursor: a CSV of any size in constant memory)."""
    with conn.cursor(name="failed_users") as cur:
        cur.execute(
            "SELECT jira_id, error FROM sync_run_users"
            " WHERE run_id = %s AND error IS NOT NULL AND outcome = 'failed'"
            " ORDER BY jira_id" + (" LIMIT %s" if limit is not None else ""),
            [run_id, limit] if limit is not None else [run_id],
        )
        for jira_id, error in cur:
            yield jira_id, error or ""


def missing_users(
    conn: psycopg.Connection[Any], run_id: UUID, *, limit: int | None
) -> Iterator[tuple[str, int, bool, bool, str]]:
    """(Jira identity, asset id, marked, came back, why not confirmed) of the assets
    whose users Jira confirmed gone in the run: marked missing, or only counted (a dry
    run, ``ignore``, over the limit), and what an approval found of each since."""
    with conn.cursor(name="missing_users") as cur:
        cur.execute(
            "SELECT jira_id, asset_id, marked, came_back, COALESCE(failure, '')"
            " FROM sync_run_missing WHERE run_id = %s"
            " ORDER BY jira_id" + (" LIMIT %s" if limit is not None else ""),
            [run_id, limit] if limit is not None else [run_id],
        )
        yield from cur
