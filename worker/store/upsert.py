"""The idempotent upsert of user assets, behind both ways in (login and bulk).

``apply_plans`` locks the users' assets, creates the missing ones (the unique index on the user field decides
races between replicas), compares every planned value with the stored one and writes
only differences. Unchanged data writes nothing, so ``updated_at`` stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from worker.mapping import AssetPlan, Value
from worker.store.folders import Folders
from worker.store.scheme import Scheme

Outcome = Literal["created", "updated", "unchanged"]
COLUMN = {"text": "value_text", "user": "value_user", "boolean": "value_bool"}


@dataclass(frozen=True)
class Change:
    jira_id: str
    asset_id: int
    outcome: Outcome
    deactivated: bool = False
    # Field name -> (stored value, planned value) of every field the plan changes: what a
    # dry run's preview shows.
    changed: Mapping[str, tuple[Value, Value]] = field(default_factory=dict)


@dataclass
class _Current:
    asset_id: int
    folder_id: int
    seen_at: datetime | None
    state: str
    new: bool = False
    values: dict[str, Value] = field(default_factory=dict)

    @classmethod
    def would_create(cls, folder_id: int) -> _Current:
        return cls(asset_id=0, folder_id=folder_id, seen_at=None, state="active", new=True)


def apply_plans(
    conn: psycopg.Connection[Any],
    scheme: Scheme,
    plans: Sequence[AssetPlan],
    *,
    folders: Folders,
    dry_run: bool = False,
) -> dict[str, Change]:
    """Make each planned asset true, inside the caller's transaction.

    Several plans for one user (duplicate messages) collapse into the newest. With
    ``dry_run`` nothing is written or locked: the changes say what would happen.
    """
    newest: dict[str, AssetPlan] = {}
    for plan in plans:
        known = newest.get(plan.jira_id)
        if known is None or plan.seen_at >= known.seen_at:
            newest[plan.jira_id] = plan
    folder_ids = {p.jira_id: folders.id(p.folder, create=not dry_run) for p in newest.values()}
    current = _find(conn, scheme, sorted(newest), lock=not dry_run)
    missing = [newest[j] for j in sorted(newest) if j not in current]
    if missing and dry_run:
        current.update({p.jira_id: _Current.would_create(folder_ids[p.jira_id]) for p in missing})
    elif missing:
        current.update(_create(conn, scheme, missing, folder_ids))
    _read_values(conn, scheme, current)
    changes, writes = _decide(scheme, newest, current, folder_ids)
    if not dry_run:
        writes.execute(conn)
    return changes


def _find(
    conn: psycopg.Connection[Any], scheme: Scheme, jira_ids: list[str], *, lock: bool = True
) -> dict[str, _Current]:
    # Locking in asset id order keeps two replicas' batches from deadlocking.
    rows = conn.execute(
        "SELECT v.value_user, a.id, a.folder_id, a.jira_seen_at, a.sync_state"
        " FROM asset_values v JOIN assets a ON a.id = v.asset_id"
        " WHERE v.field_id = %s AND v.is_unique AND v.value_user = ANY(%s)"
        " ORDER BY a.id" + (" FOR UPDATE OF a" if lock else ""),
        [scheme.user_field.id, jira_ids],
    ).fetchall()
    return {r[0]: _Current(asset_id=r[1], folder_id=r[2], seen_at=r[3], state=r[4]) for r in rows}


def _create(
    conn: psycopg.Connection[Any],
    scheme: Scheme,
    plans: list[AssetPlan],
    folders: Mapping[str, int],
) -> dict[str, _Current]:
    # The sequence is looked up once (an InitPlan): named per row, its name was parsed
    # and looked up in the catalog for every id, 4 buffers an id.
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval((SELECT pg_get_serial_sequence('assets', 'id')::regclass))"
            " FROM generate_series(1, %s)",
            [len(plans)],
        )
    ]
    conn.execute(
        "INSERT INTO assets (id, asset_type_id, folder_id, jira_seen_at)"
        " SELECT i, %s, f, s FROM unnest(%b::bigint[], %b::int[], %b::timestamptz[]) AS x (i, f, s)",
        [
            scheme.asset_type_id,
            ids,
            [folders[p.jira_id] for p in plans],
            [p.seen_at for p in plans],
        ],
    )
    won = {
        r[0]
        for r in conn.execute(
            "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type, is_unique, value_user)"
            " SELECT a, %s, %s, 'user', true, u FROM unnest(%b::bigint[], %b::text[]) AS x (a, u)"
            " ON CONFLICT (field_id, value_user) WHERE is_unique DO NOTHING RETURNING asset_id",
            [scheme.asset_type_id, scheme.user_field.id, ids, [p.jira_id for p in plans]],
        )
    }
    created = {
        p.jira_id: _Current(
            asset_id=i,
            folder_id=folders[p.jira_id],
            seen_at=p.seen_at,
            state="active",
            new=True,
            values={scheme.user_field.name: p.jira_id},  # the only value written yet
        )
        for i, p in zip(ids, plans, strict=True)
        if i in won
    }
    lost = [i for i in ids if i not in won]
    if lost:
        # Another replica created some of these users' assets first: drop ours and
        # update theirs instead.
        conn.execute("DELETE FROM assets WHERE id = ANY(%s)", [lost])
        created.update(_find(conn, scheme, [p.jira_id for p in plans if p.jira_id not in created]))
    return created


def _read_values(
    conn: psycopg.Connection[Any], scheme: Scheme, current: Mapping[str, _Current]
) -> None:
    by_asset = {c.asset_id: c for c in current.values() if not c.new}
    if not by_asset:
        return
    names = {f.id: f.name for f in scheme.fields.values()}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT asset_id, field_id, value_text, value_user, value_bool, value_datetime"
            " FROM asset_values WHERE asset_id = ANY(%s)",
            [list(by_asset)],
        )
        for row in cur:
            value = next(
                (
                    row[c]
                    for c in ("value_text", "value_user", "value_bool", "value_datetime")
                    if row[c] is not None
                ),
                None,
            )
            by_asset[row["asset_id"]].values[names[row["field_id"]]] = value


_INSERT_VALUES = (
    "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type,"
    " is_unique, value_text, value_user, value_bool)"
    " SELECT * FROM unnest(%b::bigint[], %b::int[], %b::int[], %b::text[],"
    " %b::bool[], %b::text[], %b::text[], %b::bool[])"
)


@dataclass
class _Writes:
    """The statements one batch needs; empty when nothing changed."""

    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # values of new assets
    upserts: list[tuple[Any, ...]] = field(default_factory=list)
    deletes: list[tuple[int, int]] = field(default_factory=list)
    touched: list[tuple[int, datetime, int]] = field(default_factory=list)

    def execute(self, conn: psycopg.Connection[Any]) -> None:
        # One statement per kind of write, whole arrays as parameters: a statement per
        # row costs PostgreSQL about twice the CPU for the same batch. A new asset has
        # no values yet, so its rows skip ON CONFLICT's extra index probe per row.
        if self.inserts:
            conn.execute(
                _INSERT_VALUES, [list(column) for column in zip(*self.inserts, strict=True)]
            )
        if self.upserts:
            conn.execute(
                _INSERT_VALUES + " ON CONFLICT (asset_id, field_id) DO UPDATE SET"
                " value_text = excluded.value_text, value_user = excluded.value_user,"
                " value_bool = excluded.value_bool",
                [list(column) for column in zip(*self.upserts, strict=True)],
            )
        if self.deletes:
            conn.execute(
                "DELETE FROM asset_values v USING unnest(%b::bigint[], %b::int[]) AS d (a, f)"
                " WHERE v.asset_id = d.a AND v.field_id = d.f",
                [list(column) for column in zip(*self.deletes, strict=True)],
            )
        if self.touched:
            conn.execute(
                "UPDATE assets SET folder_id = d.f, jira_seen_at = d.s, sync_state = 'active',"
                " updated_at = now()"
                " FROM unnest(%b::int[], %b::timestamptz[], %b::bigint[]) AS d (f, s, i)"
                " WHERE assets.id = d.i",
                [list(column) for column in zip(*self.touched, strict=True)],
            )


def _decide(
    scheme: Scheme,
    plans: Mapping[str, AssetPlan],
    current: Mapping[str, _Current],
    folders: Mapping[str, int],
) -> tuple[dict[str, Change], _Writes]:
    """Compare plans with what is stored: each user's outcome, and the writes needed."""
    writes = _Writes()
    changes: dict[str, Change] = {}
    for jira_id, plan in plans.items():
        cur = current[jira_id]
        if cur.seen_at is not None and plan.seen_at < cur.seen_at and not cur.new:
            # A newer snapshot (say, a login during a bulk run) already landed.
            changes[jira_id] = Change(jira_id, cur.asset_id, "unchanged")
            continue
        set_, unset = diff_values(cur.values, as_stored(scheme, plan.values))
        for name, value in set_.items():
            f = scheme.fields[name]
            cols = [value if COLUMN[f.field_type] == c else None for c in COLUMN.values()]
            (writes.inserts if cur.new else writes.upserts).append(
                (cur.asset_id, scheme.asset_type_id, f.id, f.field_type, f.is_unique, *cols)
            )
        writes.deletes.extend((cur.asset_id, scheme.fields[name].id) for name in unset)
        moved = cur.folder_id != folders[jira_id] or cur.state != "active"
        if cur.new:
            outcome: Outcome = "created"
        elif set_ or unset or moved:
            outcome = "updated"
            writes.touched.append((folders[jira_id], plan.seen_at, cur.asset_id))
        else:
            outcome = "unchanged"
        deactivated = (
            scheme.active_field is not None
            and cur.values.get(scheme.active_field) is True
            and set_.get(scheme.active_field) is False
        )
        changed = {
            n: (cur.values.get(n), v) for n, v in set_.items() if not cur.new or n in plan.values
        }
        changed.update((n, (cur.values.get(n), None)) for n in unset)
        changes[jira_id] = Change(jira_id, cur.asset_id, outcome, deactivated, changed)
    return changes, writes


def as_stored(scheme: Scheme, values: Mapping[str, Value]) -> dict[str, Value]:
    """Planned values as their fields store them: a boolean mapped onto a text field is
    the text "true" or "false" (so that an unchanged one compares equal)."""
    return {
        name: ("true" if value else "false")
        if isinstance(value, bool) and scheme.fields[name].field_type == "text"
        else value
        for name, value in values.items()
    }


def diff_values(
    current: Mapping[str, Value], planned: Mapping[str, Value]
) -> tuple[dict[str, Value], list[str]]:
    """Planned values that differ from the stored ones, and fields to empty.

    Fields the plan does not mention are left alone: people may fill them by hand.
    """
    set_: dict[str, Value] = {
        k: v for k, v in planned.items() if v is not None and current.get(k) != v
    }
    unset = [k for k, v in planned.items() if v is None and current.get(k) is not None]
    return set_, unset


def mark_missing(
    conn: psycopg.Connection[Any],
    scheme: Scheme,
    asset_ids: Sequence[int],
    *,
    seen_before: datetime | None = None,
) -> list[int]:
    """Assets whose Jira user is confirmed gone: state ``missing`` and their active field
    false. Never deleted: hardware and tickets hang off them. With ``seen_before``, an
    asset synced since then (a login found its user meanwhile) is left alone. Returns the
    assets changed (those already missing are left as they are)."""
    if not asset_ids:
        return []
    changed = [
        r[0]
        for r in conn.execute(
            "UPDATE assets SET sync_state = 'missing', updated_at = now()"
            " WHERE id = ANY(%s) AND sync_state = 'active'"
            "   AND (%s::timestamptz IS NULL OR jira_seen_at IS NULL OR jira_seen_at < %s)"
            " RETURNING id",
            [list(asset_ids), seen_before, seen_before],
        )
    ]
    active = scheme.fields.get(scheme.active_field) if scheme.active_field else None
    if active is not None and changed:
        conn.execute(
            "UPDATE asset_values SET value_bool = false"
            " WHERE field_id = %s AND asset_id = ANY(%s) AND value_bool",
            [active.id, changed],
        )
    return changed


def assets_of(conn: psycopg.Connection[Any], scheme: Scheme, jira_ids: Sequence[str]) -> list[int]:
    """The ids of these Jira users' assets."""
    return [c.asset_id for c in _find(conn, scheme, list(jira_ids), lock=False).values()]
