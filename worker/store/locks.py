"""Every PostgreSQL advisory lock of the project, its key and how it is taken.

Keys are (namespace, id) pairs or single numbers, each namespace spelling a word in
ASCII so that ``pg_locks`` says whose a lock is. Connection locks end with their
connection: a crashed holder never blocks the next one.

* migrations (``assy``): one ``migrate`` at a time, from any number of replicas;
* runs (``run``, the run id's hash): the replica fanning a run out;
* schedulers (``sch``, 1): ``--unless-recent`` requests take turns.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

MIGRATION_LOCK = 0x61737379  # "assy"
RUN_LOCKS = 0x72756E  # "run"
SCHEDULER_LOCK = (0x736368, 1)  # "sch"


def lock_migrations(conn: psycopg.Connection[Any]) -> None:
    """Wait for the migration lock (held by ``conn`` until it unlocks or closes)."""
    conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])


def try_lock_run(conn: psycopg.Connection[Any], run_id: UUID) -> bool:
    """Connection lock on the run, held by the replica fanning it out. It ends with that
    replica's connection, so a crashed replica never blocks the redelivered request."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s, hashtext(%s))", [RUN_LOCKS, str(run_id)]
    ).fetchone()
    return bool(row and row[0])


def holds_run_lock(conn: psycopg.Connection[Any], run_id: UUID) -> bool:
    """Whether this connection still holds the run's lock. It has lost it when the connection
    was ended and replaced (it cannot be: psycopg never reconnects a connection), or
    when the server forgot it; a connection that is gone raises instead."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND pid = pg_backend_pid() AND classid = %s AND objid = hashtext(%s)::oid"
        " AND objsubid = 2)",
        [RUN_LOCKS, str(run_id)],
    ).fetchone()
    return bool(row and row[0])


def unlock_run(conn: psycopg.Connection[Any], run_id: UUID) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [RUN_LOCKS, str(run_id)])


def lock_schedulers(conn: psycopg.Connection[Any]) -> None:
    """Wait for the schedulers' turn, until ``conn``'s transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", SCHEDULER_LOCK)
