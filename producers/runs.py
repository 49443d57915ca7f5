"""The bulk runs the workers record in the asset store, read for the admin script; and
the one write it makes: a scheduled run's row, so that schedulers never pile up runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from types import TracebackType
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import class_row, tuple_row

from schemas.messages import BulkSyncRequested
from worker.cli import one_line

RECENT_RUNS = 20
# Advisory lock that schedulers take turns on ("sch"; the worker's run locks use "run").
SCHEDULE_LOCK = (0x736368, 1)
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

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def in_progress(self) -> bool:
        return not self.finished

    @property
    def succeeded(self) -> bool:
        return self.state == "done" and self.failed == 0


# Named columns rather than *, so a column added to the view later breaks nothing here.
RUN_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(Run))


class StoreError(Exception):
    """The asset store could not be read; the message is one line for a person."""


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

        :raises StoreError: the asset store could not be read or written.
        """
        assert not request.username_prefix and not request.groups and not request.dry_run
        with _translate_errors(), self._conn.transaction():
            tuples = self._conn.cursor(row_factory=tuple_row)
            tuples.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEDULE_LOCK)
            recent = self._conn.execute(_RECENT_UNFILTERED, {"within": within}).fetchone()
            if recent is not None:
                return recent
            # An identical request a worker is opening right now takes this key first:
            # then its run is the one in progress (worker.runs.open_run).
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


@contextlib.contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise StoreError(
            "the asset store has no sync runs table: run `python -m worker migrate`"
        ) from exc
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot reach the asset store database: {one_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"the asset store database refused the query: {one_line(exc)}") from exc
