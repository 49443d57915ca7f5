"""Bulk run bookkeeping in PostgreSQL: the ``sync_runs`` row, one ``sync_run_users``
row per matched user, and the run's counters (``sync_run_counts``).

Counting is exact under redelivery and several replicas because each user has one row
per run: the fan-out inserts it (outcome NULL) before publishing the user's message, and
processing fills the outcome in once (``WHERE outcome IS NULL``). The counters move in
the same statement's transaction, by what those statements actually changed
(``RETURNING``): a redelivered message changes no row and so counts nothing. Reading a
run's counts (``sync_run_summary``, progress bars, metrics) sums a few counter rows,
the same at a million users as at a thousand; a run is complete when matched = done.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from schemas.messages import BulkSyncRequested
from worker.checkpoints import Checkpoint, decode_checkpoint, encode_checkpoint
from worker.errors import StoreUnavailable
from worker.store import locks, upsert
from worker.store.scheme import Scheme
from worker.store.upsert import Change

COUNT_SLOTS = 16  # counter rows per run (see _count)
# How the reason starts that a run, and each user it left open, ends with when the stall
# bound ended it (``end_stalled``): a late message of such a user is still applied.
STALLED = "stalled: "


@dataclass(frozen=True)
class Run:
    """A run as stored: what its scan matches comes from here, never from the message
    that (re)delivered its request.

    :param joined: the request joined this run, open for an identical request.
    """

    id: UUID
    state: str
    checkpoint: Checkpoint | None
    joined: bool = False
    username_prefix: str | None = None
    groups: tuple[str, ...] = ()
    dry_run: bool = False


_RUN = "r.id, r.state, r.checkpoint, r.username_prefix, r.groups, r.dry_run"


def _run(row: Any, *, joined: bool = False) -> Run:
    return Run(
        row[0],
        row[1],
        decode_checkpoint(row[2]),
        joined=joined,
        username_prefix=row[3],
        groups=tuple(row[4] or ()),
        dry_run=bool(row[5]),
    )


def open_run(conn: psycopg.Connection[Any], request: BulkSyncRequested) -> Run:
    """The run of this request, created on first sight; or, while a run for an identical
    request is open (``BulkSyncRequested.run_key``: the same filters and dry run), that
    run, which the request joins (``sync_run_joins``) instead of starting a scan.

    One open run per key is the database's rule (a partial unique index), so this holds
    with any number of replicas: of two identical requests arriving at once, one insert
    waits for the other's commit, finds the conflict and joins.

    :raises StoreUnavailable: the open run kept ending and starting under us.
    """
    row = conn.execute(
        f"SELECT {_RUN} FROM sync_run_joins j"
        " JOIN sync_runs r ON r.id = j.run_id WHERE j.request_id = %s",
        [request.request_id],
    ).fetchone()
    if row is not None:  # joined before (a redelivered request)
        return _run(row, joined=True)
    key = request.run_key()
    for _ in range(3):
        conn.execute(
            "INSERT INTO sync_runs (id, requested_by, requested_at, username_prefix, groups,"
            " dry_run, request_key) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                request.request_id,
                request.requested_by,
                request.requested_at,
                request.username_prefix,
                list(request.groups),
                request.dry_run,
                key,
            ],
        )
        row = conn.execute(
            f"SELECT {_RUN} FROM sync_runs r WHERE r.id = %s", [request.request_id]
        ).fetchone()
        if row is not None:
            return _run(row)
        row = conn.execute(
            f"SELECT {_RUN} FROM sync_runs r"
            " WHERE r.request_key = %s AND r.state IN ('fanning_out', 'processing')",
            [key],
        ).fetchone()
        if row is not None:
            conn.execute(
                "INSERT INTO sync_run_joins (request_id, run_id, requested_by, requested_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [request.request_id, row[0], request.requested_by, request.requested_at],
            )
            return _run(row, joined=True)
        # That run ended between the two statements: try again, it no longer conflicts.
    raise StoreUnavailable(
        f"the open run of {key} kept changing while run {request.request_id} was opened"
    )


def state_of(conn: psycopg.Connection[Any], run_id: UUID) -> str | None:
    """The run's state; None for a run not recorded (yet)."""
    row = conn.execute("SELECT state FROM sync_runs WHERE id = %s", [run_id]).fetchone()
    return str(row[0]) if row is not None else None


def add_matched(conn: psycopg.Connection[Any], run_id: UUID, jira_ids: Sequence[str]) -> set[str]:
    """Record users as matched by the run; return those still to be synced: new ones,
    and any matched before (a scan resumed after a crash) whose outcome is still open."""
    added = {
        r[0]
        for r in conn.execute(
            "INSERT INTO sync_run_users (run_id, jira_id) SELECT %s, unnest(%b::text[])"
            " ON CONFLICT (run_id, jira_id) DO NOTHING RETURNING jira_id",
            [run_id, list(jira_ids)],
        )
    }
    _count(conn, run_id, matched=len(added))
    seen = [j for j in jira_ids if j not in added]
    if seen:  # only when a page is read again
        added.update(
            r[0]
            for r in conn.execute(
                "SELECT jira_id FROM sync_run_users"
                " WHERE run_id = %s AND jira_id = ANY(%b) AND outcome IS NULL",
                [run_id, seen],
            )
        )
    return added


def add_rejected(
    conn: psycopg.Connection[Any], run_id: UUID, rejected: Sequence[tuple[str, str]]
) -> int:
    """Record users a listing described in a way that cannot be stored as failed in the
    run, with the reason: counted once however often the page is read. Returns how many
    are new."""
    if not rejected:
        return 0
    added = conn.execute(
        "INSERT INTO sync_run_users (run_id, jira_id, outcome, error)"
        " SELECT %s, j, 'failed', e FROM unnest(%b::text[], %b::text[]) AS r (j, e)"
        " ON CONFLICT (run_id, jira_id) DO NOTHING RETURNING jira_id",
        [run_id, [j for j, _ in rejected], [e[:1000] for _, e in rejected]],
    ).fetchall()
    _count(conn, run_id, matched=len(added), done=len(added), failed=len(added))
    return len(added)


def save_checkpoint(conn: psycopg.Connection[Any], run_id: UUID, checkpoint: Checkpoint) -> None:
    conn.execute(
        "UPDATE sync_runs SET checkpoint = %s WHERE id = %s",
        [json.dumps(encode_checkpoint(checkpoint)), run_id],
    )


def still_open(conn: psycopg.Connection[Any], run_id: UUID, jira_ids: Sequence[str]) -> set[str]:
    """Those of ``jira_ids`` that the run matched and has not settled, while the run is
    open: the only users a ``user-sync`` of this run may write."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT u.jira_id FROM sync_run_users u JOIN sync_runs r ON r.id = u.run_id"
            " WHERE u.run_id = %s AND u.jira_id = ANY(%b) AND u.outcome IS NULL"
            " AND r.state IN ('fanning_out', 'processing')",
            [run_id, list(jira_ids)],
        )
    }


def settled(
    conn: psycopg.Connection[Any], run_id: UUID, jira_ids: Sequence[str]
) -> dict[str, bool]:
    """Those of ``jira_ids`` whose outcome the run has already recorded, each with
    whether it is a failure the stall bound recorded (``end_stalled``): a message that
    comes that late is still applied (``record_late_outcomes``)."""
    return {
        r[0]: bool(r[1])
        for r in conn.execute(
            "SELECT jira_id, outcome = 'failed' AND starts_with(error, %s) FROM sync_run_users"
            " WHERE run_id = %s AND jira_id = ANY(%b) AND outcome IS NOT NULL",
            [STALLED, run_id, list(jira_ids)],
        )
    }


_SETTLE = (
    "UPDATE sync_run_users u SET outcome = o.outcome, deactivated = o.deactivated"
    " FROM unnest(%b::text[], %b::text[], %b::bool[]) AS o (jira_id, outcome, deactivated)"
    " WHERE u.run_id = %s AND u.jira_id = o.jira_id AND u.outcome IS NULL"
)


def record_outcomes(conn: psycopg.Connection[Any], run_id: UUID, changes: Iterable[Change]) -> None:
    """Each user's outcome, kept only the first time (a redelivered message that finds
    its asset already written must not turn "created" into "unchanged")."""
    rows = [(c.jira_id, c.outcome, c.deactivated) for c in changes]
    if not rows:
        return
    jira_ids, outcomes, deactivated = (list(c) for c in zip(*rows, strict=True))
    settled = conn.execute(
        _SETTLE + " RETURNING o.outcome, o.deactivated",
        [jira_ids, outcomes, deactivated, run_id],
    ).fetchall()
    _count_settled(conn, run_id, settled)


def record_outcomes_if_open(
    conn: psycopg.Connection[Any], run_id: UUID, changes: Sequence[Change]
) -> bool:
    """``record_outcomes`` when every one of these users is still open in an open run
    (``still_open`` of them all), in one statement; otherwise nothing is counted and
    False says so: the caller rolls its transaction back, writes included, and takes
    the careful way (``still_open`` first). A batch of a run in progress is all open,
    so its users are looked up once instead of twice."""
    if not changes:
        return True
    settled = conn.execute(
        _SETTLE + " AND EXISTS (SELECT FROM sync_runs r WHERE r.id = %s"
        " AND r.state IN ('fanning_out', 'processing'))"
        " RETURNING o.outcome, o.deactivated",
        [
            [c.jira_id for c in changes],
            [c.outcome for c in changes],
            [c.deactivated for c in changes],
            run_id,
            run_id,
        ],
    ).fetchall()
    if len(settled) < len(changes):
        return False
    _count_settled(conn, run_id, settled)
    return True


def _count_settled(
    conn: psycopg.Connection[Any], run_id: UUID, settled: Sequence[tuple[Any, ...]]
) -> None:
    by_outcome = Counter(outcome for outcome, _ in settled)
    _count(
        conn,
        run_id,
        done=len(settled),
        created=by_outcome["created"],
        updated=by_outcome["updated"],
        unchanged=by_outcome["unchanged"],
        deactivated=sum(1 for _, d in settled if d),
    )


def record_late_outcomes(
    conn: psycopg.Connection[Any], run_id: UUID, changes: Iterable[Change]
) -> int:
    """The outcome of users the stall bound had counted failed, whose messages came
    after all: the run's counts say what happened to them (its state stays as it ended).
    Returns how many were recorded."""
    rows = [(c.jira_id, c.outcome, c.deactivated) for c in changes]
    if not rows:
        return 0
    jira_ids, outcomes, deactivated = (list(c) for c in zip(*rows, strict=True))
    late = conn.execute(
        "UPDATE sync_run_users u SET outcome = o.outcome, deactivated = o.deactivated, error = NULL"
        " FROM unnest(%b::text[], %b::text[], %b::bool[]) AS o (jira_id, outcome, deactivated)"
        " WHERE u.run_id = %s AND u.jira_id = o.jira_id AND u.outcome = 'failed'"
        " AND starts_with(u.error, %s)"
        " RETURNING o.outcome, o.deactivated",
        [jira_ids, outcomes, deactivated, run_id, STALLED],
    ).fetchall()
    by_outcome = Counter(outcome for outcome, _ in late)
    _count(
        conn,
        run_id,
        failed=-len(late),
        created=by_outcome["created"],
        updated=by_outcome["updated"],
        unchanged=by_outcome["unchanged"],
        deactivated=sum(1 for _, d in late if d),
    )
    return len(late)


def record_failures(
    conn: psycopg.Connection[Any], run_id: UUID, failures: Iterable[tuple[str, str]]
) -> None:
    """Users of the run given up on; a user the run never matched is no business of it."""
    rows = list(failures)
    if not rows:
        return
    failed = conn.execute(
        "UPDATE sync_run_users u SET outcome = 'failed', error = f.e"
        " FROM unnest(%b::text[], %b::text[]) AS f (j, e)"
        " WHERE u.run_id = %s AND u.jira_id = f.j AND u.outcome IS NULL"
        " RETURNING u.jira_id",
        [[j for j, _ in rows], [e[:1000] for _, e in rows], run_id],
    ).fetchall()
    _count(conn, run_id, done=len(failed), failed=len(failed))


def _count(conn: psycopg.Connection[Any], run_id: UUID, **moved: int) -> None:
    """Move the run's counters by ``moved``, in the caller's transaction, on a counter row
    of this connection's own (its pid's slot), so that replicas do not queue on one row."""
    if not any(moved.values()):
        return
    names = list(moved)
    conn.execute(
        f"INSERT INTO sync_run_counts (run_id, slot, {', '.join(names)})"
        f" VALUES (%s, pg_backend_pid() %% {COUNT_SLOTS}, {', '.join(['%s'] * len(names))})"
        " ON CONFLICT (run_id, slot) DO UPDATE SET "
        + ", ".join(f"{n} = sync_run_counts.{n} + excluded.{n}" for n in names),
        [run_id, *moved.values()],
    )


def finish_if_complete(conn: psycopg.Connection[Any], run_id: UUID) -> str | None:
    """Mark the run finished when its scan is over and no user is open: ``done``, or
    ``failed`` when the fan-out recorded an error (the missing limit). Returns the state
    it ended in, or None when it goes on.

    Call it after committing the work it should see, outside any transaction that
    holds locks: every batch checks once its own outcomes are committed, so the last
    batch to commit always sees all the others' (each statement sees what committed
    before it started), and no batch waits for another's lock.
    """
    row = conn.execute(
        "UPDATE sync_runs SET finished_at = now(),"
        " state = CASE WHEN error IS NULL THEN 'done' ELSE 'failed' END"
        " WHERE id = %s AND state = 'processing' AND ("
        "   SELECT COALESCE(sum(matched - done), 0) FROM sync_run_counts WHERE run_id = %s) = 0"
        " RETURNING state",
        [run_id, run_id],
    ).fetchone()
    return str(row[0]) if row is not None else None


def finish_runs(conn: psycopg.Connection[Any], run_ids: Iterable[UUID]) -> list[tuple[UUID, str]]:
    """``finish_if_complete`` for each run: the ones that ended now, with their state."""
    ended = ((run_id, finish_if_complete(conn, run_id)) for run_id in sorted(set(run_ids)))
    return [(run_id, state) for run_id, state in ended if state is not None]


@dataclass(frozen=True)
class OpenRun:
    """An open run as the run watch sees it.

    :param mark: matched + done: it changes whenever the run makes progress.
    :param locked: a replica holds its run lock (it is scanning Jira, or looking up
        the users gone at the end of the scan): alive, even while no count moves.
    """

    id: UUID
    state: str
    matched: int
    done: int
    locked: bool

    @property
    def mark(self) -> int:
        return self.matched + self.done

    @property
    def complete(self) -> bool:
        return self.state == "processing" and self.matched == self.done


def watch_open_runs(conn: psycopg.Connection[Any]) -> list[OpenRun]:
    """Every open run, from its counters (a few rows each) and the run locks; and, in the
    same statement, when each last made progress (``progressed_at``, for the people who
    follow runs): now, for those whose mark changed since the last look or that are locked.
    """
    rows = conn.execute(
        "WITH open AS ("
        "  SELECT r.id, r.state, COALESCE(sum(c.matched), 0)::bigint AS matched,"
        "         COALESCE(sum(c.done), 0)::bigint AS done, EXISTS ("
        "           SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        "           AND l.classid = %(locks)s AND l.objid = hashtext(r.id::text)::oid"
        "           AND l.objsubid = 2) AS locked"
        "  FROM sync_runs r LEFT JOIN sync_run_counts c ON c.run_id = r.id"
        "  WHERE r.state IN ('fanning_out', 'processing') GROUP BY r.id),"
        " noted AS ("
        "  UPDATE sync_runs r SET progress_mark = o.matched + o.done, progressed_at = now()"
        "  FROM open o WHERE r.id = o.id"
        "  AND (o.locked OR r.progress_mark IS DISTINCT FROM o.matched + o.done))"
        " SELECT id, state, matched, done, locked FROM open ORDER BY id",
        {"locks": locks.RUN_LOCKS},
    ).fetchall()
    return [OpenRun(r[0], r[1], int(r[2]), int(r[3]), bool(r[4])) for r in rows]


def end_stalled(
    conn: psycopg.Connection[Any], run: OpenRun, *, idle: float, bound: float
) -> int | None:
    """End ``run``, idle for ``idle`` seconds (over ``bound``), ``failed``: each user it
    left open is counted failed, with the reason. Only if it is still open and its counts
    still where the watch saw them; returns how many users were left open, or None when
    the run moved on meanwhile."""
    row = conn.execute(
        "SELECT state FROM sync_runs WHERE id = %s AND state = %s FOR UPDATE",
        [run.id, run.state],
    ).fetchone()
    if row is None:
        return None
    now = conn.execute(
        "SELECT COALESCE(sum(matched + done), 0)::bigint FROM sync_run_counts WHERE run_id = %s",
        [run.id],
    ).fetchone()
    if now is None or int(now[0]) != run.mark:
        return None
    doing = "scanning Jira" if run.state == "fanning_out" else "processing its users"
    why = (
        f"{STALLED}no progress for {idle:.0f} s while {doing}"
        f" (ASSETSYNC_RUN_STALL_AFTER is {bound:g} s)"
    )
    left = conn.execute(
        "UPDATE sync_run_users SET outcome = 'failed', error = %s"
        " WHERE run_id = %s AND outcome IS NULL",
        [f"{why}: its message never came back", run.id],
    ).rowcount
    _count(conn, run.id, done=left, failed=left)
    conn.execute(
        "UPDATE sync_runs SET state = 'failed', finished_at = now(), checkpoint = NULL,"
        " error = %s WHERE id = %s",
        [f"{why}; {left} users left unprocessed, counted failed", run.id],
    )
    return left


def end_fan_out(conn: psycopg.Connection[Any], run_id: UUID, *, error: str | None = None) -> None:
    """The scan is over: the run goes on processing its users. With ``error`` it will end
    ``failed`` with it once they are processed (the users are still synced)."""
    conn.execute(
        "UPDATE sync_runs SET state = 'processing', fanned_out_at = now(), checkpoint = NULL,"
        " error = COALESCE(%s, error)"
        " WHERE id = %s AND state = 'fanning_out'",
        [error[:1000] if error else None, run_id],
    )


def fail_run(conn: psycopg.Connection[Any], run_id: UUID, error: str) -> None:
    """End the run ``failed`` with ``error``; each user it left open is counted failed
    with it, so that every matched user ends done or failed (a message of one still in
    flight then finds its user settled, and is acked, not dead-lettered)."""
    ended = conn.execute(
        "UPDATE sync_runs SET state = 'failed', error = %s, finished_at = now()"
        " WHERE id = %s AND state IN ('fanning_out', 'processing')",
        [error[:1000], run_id],
    ).rowcount
    if ended:
        left = conn.execute(
            "UPDATE sync_run_users SET outcome = 'failed', error = %s"
            " WHERE run_id = %s AND outcome IS NULL",
            [f"the run failed: {error}"[:1000], run_id],
        ).rowcount
        _count(conn, run_id, done=left, failed=left)


def unreached_assets(
    conn: psycopg.Connection[Any], run_id: UUID, scheme: Scheme, *, after: int, limit: int
) -> list[tuple[int, str]]:
    """(asset id, Jira identity) of active assets of the synced type whose user the run
    has not matched, by asset id from ``after`` on, at most ``limit`` of them.

    Only assets last synced before the run started count: a user created in Jira and
    synced by a login during the run has not gone. Assets already marked missing are
    not asked about again.
    """
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT a.id, v.value_user FROM assets a"
            " JOIN asset_values v ON v.asset_id = a.id AND v.field_id = %(field)s AND v.is_unique"
            " JOIN sync_runs r ON r.id = %(run)s"
            " WHERE a.asset_type_id = %(type)s AND a.sync_state = 'active' AND a.id > %(after)s"
            "   AND (a.jira_seen_at IS NULL OR a.jira_seen_at < r.started_at)"
            "   AND NOT EXISTS (SELECT 1 FROM sync_run_users u"
            "                   WHERE u.run_id = %(run)s AND u.jira_id = v.value_user)"
            " ORDER BY a.id LIMIT %(limit)s",
            {
                "field": scheme.user_field.id,
                "run": run_id,
                "type": scheme.asset_type_id,
                "after": after,
                "limit": limit,
            },
        )
    ]


def count_assets(conn: psycopg.Connection[Any], scheme: Scheme) -> int:
    row = conn.execute(
        "SELECT count(*) FROM assets WHERE asset_type_id = %s", [scheme.asset_type_id]
    ).fetchone()
    return int(row[0]) if row else 0


def mark_missing(
    conn: psycopg.Connection[Any], run_id: UUID, scheme: Scheme, asset_ids: Sequence[int]
) -> list[int]:
    """``store.mark_missing`` for assets the run confirmed gone, leaving alone any synced
    since the run started (a login found its user). Returns the assets changed."""
    row = conn.execute("SELECT started_at FROM sync_runs WHERE id = %s", [run_id]).fetchone()
    if row is None:
        return []
    return upsert.mark_missing(conn, scheme, asset_ids, seen_before=row[0])


def record_missing(
    conn: psycopg.Connection[Any], run_id: UUID, *, missing: int, checked: int
) -> None:
    """How many unreached assets the run looked up in Jira, and how many of their users
    Jira confirmed gone."""
    conn.execute(
        "UPDATE sync_runs SET missing = %s, missing_checked = %s WHERE id = %s",
        [missing, checked, run_id],
    )


def runs_to_prune(conn: psycopg.Connection[Any], *, older_than_days: float) -> list[UUID]:
    """Runs that ended more than ``older_than_days`` ago and still have per-user rows."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM sync_runs WHERE users_pruned_at IS NULL AND finished_at IS NOT NULL"
            " AND finished_at < now() - make_interval(secs => %s) ORDER BY finished_at LIMIT 100",
            [older_than_days * 86400],
        )
    ]


def prune_users(conn: psycopg.Connection[Any], run_id: UUID, *, chunk: int) -> int:
    """Delete up to ``chunk`` per-user rows of the run; how many went. Its counters,
    and so its summary, stay."""
    deleted = conn.execute(
        "DELETE FROM sync_run_users WHERE ctid = ANY(ARRAY("
        "  SELECT ctid FROM sync_run_users WHERE run_id = %s LIMIT %s))",
        [run_id, chunk],
    ).rowcount
    if deleted < chunk:
        conn.execute("UPDATE sync_runs SET users_pruned_at = now() WHERE id = %s", [run_id])
    return deleted


def analyze(conn: psycopg.Connection[Any]) -> None:
    """Fresh statistics for the per-user rows, while a run adds them by the thousand.

    A table PostgreSQL has never analyzed (a new deployment, or a server without
    autovacuum) is taken for nearly empty: a batch's outcomes were then written by
    reading every row of the run instead of looking each user up, 14 ms a batch at
    100,000 users and growing with the run. Any statistics at all fix the plan; a few
    ANALYZEs during a run (each samples a fixed number of rows) keep them current.
    Without ownership of the table PostgreSQL only warns, and the run goes on.
    """
    conn.execute("ANALYZE sync_run_users")
