"""What people read of the asset store: the documented views ``sync_run_summary`` (a
run's state and counts: the admin script, the metrics, the console) and ``user_assets``;
and the one write a scheduler makes, a scheduled run's row, so that schedulers never
pile up runs (``RunStore.request_unless_recent``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from types import TracebackType
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import class_row, tuple_row

from schemas.messages import BulkSyncRequested
from worker.errors import ConfigError, StoreRejected, StoreUnavailable
from worker.store import locks

RECENT_RUNS = 20
FINAL_STATES = frozenset({"done", "failed"})


# ---------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One row of the ``sync_run_summary`` view: the columns this script shows."""

    run_id: UUID
    state: str
    dry_run: bool
    requested_by: str
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
    progressed_at: datetime  # when the run watch last saw it move (worker.run_watch)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def in_progress(self) -> bool:
        return not self.finished

    def idle_s(self, now: datetime) -> float:
        """Seconds an open run has gone without progress (0 once it ended)."""
        return 0.0 if self.finished else max(0.0, (now - self.progressed_at).total_seconds())

    @property
    def succeeded(self) -> bool:
        return self.state == "done" and self.failed == 0


# Named columns rather than *, so a column added to the view later breaks nothing here.
RUN_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(Run))


class RunStore:
    """Reads runs from the asset store over one autocommit connection.

    Autocommit, so that no transaction stays open between polls: each poll sees what
    the workers committed since.
    """

    def __init__(self, *, url: str, timeout: int = 10) -> None:
        with _translate_errors():
            self._conn = psycopg.connect(
                url, autocommit=True, connect_timeout=timeout, row_factory=class_row(Run)
            )
            try:
                # Fail now, before a request is published that could then not be followed.
                self._conn.execute(
                    sql.SQL("SELECT {} FROM sync_run_summary LIMIT 0").format(RUN_COLUMNS)
                )
            except BaseException:
                self._conn.close()
                raise

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._conn.close()

    def get(self, run_id: UUID) -> Run | None:
        """The run of this request id: its own, or the open run it joined (whose
        ``run_id`` is then another)."""
        query = sql.SQL(
            "SELECT {} FROM sync_run_summary WHERE run_id = COALESCE("
            " (SELECT run_id FROM sync_run_joins WHERE request_id = %(id)s), %(id)s)"
        ).format(RUN_COLUMNS)
        with _translate_errors():
            return self._conn.execute(query, {"id": run_id}).fetchone()

    def recent(self, limit: int = RECENT_RUNS) -> list[Run]:
        # Limit the runs before the view counts their users, not after.
        query = sql.SQL(
            "SELECT {} FROM sync_run_summary"
            " WHERE run_id IN (SELECT id FROM sync_runs ORDER BY started_at DESC LIMIT %s)"
            " ORDER BY started_at DESC, run_id"
        ).format(RUN_COLUMNS)
        with _translate_errors():
            return self._conn.execute(query, [limit]).fetchall()

    def request_unless_recent(
        self, request: BulkSyncRequested, *, within: float, publish: Callable[[], None]
    ) -> Run | None:
        """Record ``request``'s run and ``publish`` it, unless an unfiltered real run is
        in progress or ended ``done`` less than ``within`` seconds ago: then return
        that run and do neither.

        Schedulers take turns on an advisory lock, and the new run's row is inserted in
        the transaction that is committed only after ``publish`` returned (the broker
        confirmed): from then on the next scheduler sees the run in progress, even
        before a worker has picked the request up (the worker finds the row and goes
        on). If publishing fails, no row is left behind. A failed run does not count,
        so the next schedule tries again.

        :raises StoreUnavailable: the asset store could not be reached.
        :raises StoreRejected: it refused the query.
        """
        assert not request.username_prefix and not request.groups and not request.dry_run
        with _translate_errors(), self._conn.transaction():
            tuples = self._conn.cursor(row_factory=tuple_row)
            locks.lock_schedulers(self._conn)
            recent = self._conn.execute(_RECENT_UNFILTERED, {"within": within}).fetchone()
            if recent is not None:
                return recent
            # An identical request a worker is opening right now takes this key first:
            # then its run is the one in progress (worker.store.runs.open_run).
            tuples.execute(
                "INSERT INTO sync_runs (id, requested_by, requested_at, request_key)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [request.request_id, request.requested_by, request.requested_at, request.run_key()],
            )
            if tuples.rowcount == 0:
                return self._conn.execute(_RECENT_UNFILTERED, {"within": within}).fetchone()
            publish()
        return None


# The run in progress, else the last one done within the window: unfiltered, real runs.
_RECENT_UNFILTERED = sql.SQL(
    "SELECT {} FROM sync_run_summary WHERE run_id = ("
    "  SELECT id FROM sync_runs"
    "  WHERE username_prefix IS NULL AND groups = '{{}}' AND NOT dry_run"
    "    AND (state IN ('fanning_out', 'processing')"
    "         OR (state = 'done' AND finished_at > now() - make_interval(secs => %(within)s)))"
    "  ORDER BY state = 'done', COALESCE(finished_at, started_at) DESC LIMIT 1)"
).format(RUN_COLUMNS)


def progress(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """The newest run still in progress: its id, state and counts, or None."""
    row = conn.execute(
        "SELECT run_id, state, matched, done, failed,"
        " EXTRACT(EPOCH FROM now() - progressed_at)::float8 FROM sync_run_summary"
        " WHERE state IN ('fanning_out', 'processing') ORDER BY started_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("run_id", "state", "matched", "done", "failed", "idle_s"), row, strict=True))


def user_asset_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    """(folder path, username, full name, active) of every user asset, by folder and
    username, from the ``user_assets`` view of the default scheme's fields."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT folder_path, fields->>'Username', fields->>'Full name', fields->>'Active'"
            " FROM user_assets ORDER BY folder_path, fields->>'Username'"
        )
    ]


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    """psycopg's errors as the tree's, each a line for a person (the admin script)."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise ConfigError(
            "the asset store has no sync runs table: run `python -m worker migrate`"
        ) from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the asset store database: {_one_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreRejected(
            f"the asset store database refused the query: {_one_line(exc)}"
        ) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
