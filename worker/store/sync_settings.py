"""The stored sync settings (``sync_settings``, one row per saved version) and the audit
log (``audit_log``): the console writes both, workers read the newest settings.

Versions are consecutive: a save names the version it was based on and becomes the
next one, or is refused (``StaleSettings``) when someone saved in between, so that two
administrators editing at once never silently undo each other's change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from worker.errors import StaleSettings


@dataclass(frozen=True)
class StoredSettings:
    """The newest saved version (version 0, empty, when nothing was ever saved)."""

    version: int
    values: Mapping[str, Any]
    saved_by: str | None = None
    saved_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    old_value: Any
    new_value: Any


def settings_version(conn: psycopg.Connection[Any]) -> int:
    """The newest version's number (0: none saved): a primary-key look-up, cheap to poll."""
    row = conn.execute("SELECT COALESCE(max(version), 0) FROM sync_settings").fetchone()
    return int(row[0]) if row else 0


def load_settings(conn: psycopg.Connection[Any]) -> StoredSettings:
    row = conn.execute(
        "SELECT version, settings, saved_by, saved_at FROM sync_settings"
        " ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return StoredSettings(version=0, values={})
    return StoredSettings(version=row[0], values=dict(row[1]), saved_by=row[2], saved_at=row[3])


def save_settings(
    conn: psycopg.Connection[Any], values: Mapping[str, Any], *, based_on: int, by: str
) -> int:
    """Store ``values`` as the version after ``based_on``; return its number.

    :raises StaleSettings: ``based_on`` is not the newest version any more.
    """
    row = conn.execute(
        "INSERT INTO sync_settings (version, settings, saved_by)"
        " SELECT %(next)s, %(values)s, %(by)s"
        " WHERE (SELECT COALESCE(max(version), 0) FROM sync_settings) = %(based_on)s"
        # Two saves based on the same version: the second waits for the first, then
        # finds its version taken.
        " ON CONFLICT (version) DO NOTHING RETURNING version",
        {"next": based_on + 1, "values": Jsonb(dict(values)), "by": by, "based_on": based_on},
    ).fetchone()
    if row is None:
        newest = load_settings(conn)
        raise StaleSettings(
            f"the settings were changed by {newest.saved_by or 'someone'} meanwhile"
            f" (version {newest.version}); nothing was saved: look at them again and retry"
        )
    return int(row[0])


def audit(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    subject: str,
    old: Any = None,
    new: Any = None,
) -> None:
    """Write one audit entry, in the caller's transaction (so it is there exactly when
    the change it records is)."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, subject, old_value, new_value)"
        " VALUES (%s, %s, %s, %s, %s)",
        [actor, action, subject, _json(old), _json(new)],
    )


def audit_entries(
    conn: psycopg.Connection[Any], *, limit: int, before: int | None = None
) -> list[AuditEntry]:
    """The newest entries first, from before entry id ``before`` on (paging)."""
    with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        return cur.execute(
            "SELECT id, at, actor, action, subject, old_value, new_value FROM audit_log"
            " WHERE %(before)s::bigint IS NULL OR id < %(before)s"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"before": before, "limit": limit},
        ).fetchall()


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)
