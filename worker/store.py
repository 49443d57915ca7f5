"""The asset store in PostgreSQL: reading the data scheme, writing user assets.

``apply_plans`` is the idempotent upsert behind both ways in (login and bulk): it locks
the users' assets, creates the missing ones (the unique index on the user field decides
races between replicas), compares every planned value with the stored one and writes
only differences. Unchanged data writes nothing, so ``updated_at`` stays.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from worker.errors import ConfigError, StoreRejected, StoreUnavailable
from worker.mapping import AssetPlan, Value

log = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]
COLUMN = {"text": "value_text", "user": "value_user", "boolean": "value_bool"}
# Which asset field types can hold which kind of Jira value.
NO_FOLDER = -1  # dry run: the folder does not exist yet
COMPATIBLE = {"text": {"text"}, "identity": {"user", "text"}, "boolean": {"boolean"}}


@dataclass(frozen=True)
class FieldDef:
    id: int
    name: str
    field_type: str
    is_unique: bool


@dataclass(frozen=True)
class Scheme:
    """The asset type being synced and its fields, read once at start."""

    asset_type_id: int
    asset_type: str
    user_field: FieldDef
    fields: Mapping[str, FieldDef]
    active_field: str | None = None  # the field Jira's "active" flag is mapped onto


@dataclass(frozen=True)
class Change:
    jira_id: str
    asset_id: int
    outcome: Outcome
    deactivated: bool = False


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


class Store:
    """One connection pool per worker replica.

    :param url: a libpq connection string or ``postgresql://`` URL.
    :param max_size: connections in the pool (one per thread that writes).
    """

    def __init__(self, *, url: str, max_size: int = 6) -> None:
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=10,
            kwargs={"connect_timeout": 10, "application_name": "assetsync"},
            configure=_notice_dead_clients,
        )
        self._folders: dict[tuple[str, ...], int] = {}

    def open(self) -> None:
        try:
            self._pool.open(wait=True, timeout=15)
        except psycopg_pool.PoolTimeout as exc:
            raise StoreUnavailable("cannot connect to the asset store database") from exc

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction; commits on success. Errors translated."""
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    def load_scheme(
        self,
        *,
        asset_type: str,
        user_field: str,
        field_map: Mapping[str, str],
        kinds: Mapping[str, str],
    ) -> Scheme:
        """Read and check the asset type against the sync settings.

        :param kinds: the kind of value each Jira field yields (``settings.JIRA_FIELDS``).
        :raises ConfigError: naming the first setting that does not fit the store.
        """
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM asset_types WHERE name = %s", [asset_type]
            ).fetchone()
            if row is None:
                names = [r[0] for r in conn.execute("SELECT name FROM asset_types ORDER BY name")]
                raise ConfigError(
                    f"ASSETSYNC_ASSET_TYPE: no asset type {asset_type!r} in the asset store"
                    f" (it has: {', '.join(names) or 'none'})"
                )
            fields = {
                r[1]: FieldDef(*r)
                for r in conn.execute(
                    "SELECT id, name, field_type, is_unique FROM asset_fields"
                    " WHERE asset_type_id = %s ORDER BY id",
                    [row[0]],
                )
            }
        scheme = Scheme(
            asset_type_id=row[0],
            asset_type=asset_type,
            user_field=_user_field(fields, asset_type, user_field),
            fields=fields,
            active_field=field_map.get("active"),
        )
        _check_map(scheme, field_map, kinds)
        return scheme

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own, in autocommit mode (for session-level locks)."""
        with translate_errors(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    def folder_id(self, path: tuple[str, ...], *, create: bool = True) -> int | None:
        """The id of a folder path, creating missing folders unless ``create`` is false
        (then a missing folder is ``None``). Folders are created in their own
        transaction, so that a later rollback cannot leave a cached id pointing nowhere."""
        cached = self._folders.get(path)
        if cached is not None:
            return cached
        parent: int | None = None
        with self.transaction() as conn:
            for name in path:
                if create:
                    conn.execute(
                        "INSERT INTO folders (parent_id, name) VALUES (%s, %s)"
                        " ON CONFLICT (parent_id, name) DO NOTHING",
                        [parent, name],
                    )
                found = conn.execute(
                    "SELECT id FROM folders WHERE parent_id IS NOT DISTINCT FROM %s AND name = %s",
                    [parent, name],
                ).fetchone()
                if found is None:
                    return None
                parent = found[0]
        assert parent is not None
        self._folders[path] = parent
        return parent

    def apply_plans(
        self,
        conn: psycopg.Connection[Any],
        scheme: Scheme,
        plans: Sequence[AssetPlan],
        *,
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
        folders = {
            p.jira_id: self.folder_id(p.folder, create=not dry_run) or NO_FOLDER
            for p in newest.values()
        }
        current = _find(conn, scheme, sorted(newest), lock=not dry_run)
        missing = [newest[j] for j in sorted(newest) if j not in current]
        if missing and dry_run:
            current.update({p.jira_id: _Current.would_create(folders[p.jira_id]) for p in missing})
        elif missing:
            current.update(_create(conn, scheme, missing, folders))
        _read_values(conn, scheme, current)
        changes, writes = _decide(scheme, newest, current, folders)
        if not dry_run:
            writes.execute(conn)
        return changes


def _notice_dead_clients(conn: psycopg.Connection[Any]) -> None:
    """Have PostgreSQL probe this connection's TCP peer after 10 s of silence and drop
    it after three unanswered probes 5 s apart (its defaults: hours). A replica whose
    host dies then loses its session, and with it the run lock a bulk fan-out holds,
    within about 25 s, so that the request RabbitMQ hands to another replica can go on
    (``handlers.RUN_LOCK_WAIT``). Over a Unix socket these settings do nothing."""
    for name, value in (
        ("tcp_keepalives_idle", 10),
        ("tcp_keepalives_interval", 5),
        ("tcp_keepalives_count", 3),
    ):
        conn.execute(f"SET {name} = {value}")
    conn.commit()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """psycopg's errors as ours: connection trouble is transient, refusals permanent."""
    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        # OperationalError covers lost connections, deadlocks and serialization failures.
        raise StoreUnavailable(f"asset store unavailable: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise StoreRejected(f"asset store refused the change: {exc}".strip()) from exc


def _user_field(fields: Mapping[str, FieldDef], asset_type: str, name: str) -> FieldDef:
    found = fields.get(name)
    if found is None:
        raise ConfigError(f"ASSETSYNC_USER_FIELD: asset type {asset_type!r} has no field {name!r}")
    if found.field_type != "user":
        raise ConfigError(
            f"ASSETSYNC_USER_FIELD: field {name!r} is of type {found.field_type}, not user"
        )
    if not found.is_unique:
        raise ConfigError(
            f"ASSETSYNC_USER_FIELD: field {name!r} must be unique, so that each Jira user"
            " has exactly one asset"
        )
    return found


def _check_map(scheme: Scheme, field_map: Mapping[str, str], kinds: Mapping[str, str]) -> None:
    for jira_field, asset_field in field_map.items():
        target = scheme.fields.get(asset_field)
        if target is None:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: asset type {scheme.asset_type!r} has no field"
                f" {asset_field!r} (mapped from {jira_field})"
            )
        if target == scheme.user_field:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: {jira_field} is mapped onto {asset_field!r}, the user"
                " field that holds the Jira identity"
            )
        if target.field_type not in COMPATIBLE[kinds[jira_field]]:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: {jira_field} ({kinds[jira_field]}) cannot go into"
                f" {asset_field!r}, a field of type {target.field_type}"
            )


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
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('assets', 'id')) FROM generate_series(1, %s)",
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
        set_, unset = diff_values(cur.values, plan.values)
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
        changes[jira_id] = Change(jira_id, cur.asset_id, outcome, deactivated)
    return changes, writes


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
