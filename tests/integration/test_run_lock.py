"""The run lock lives on one pooled database connection: when that connection is killed mid-scan,
the replica that held it stops publishing, and the run is scanned on from its checkpoint
by whoever takes the lock next, never by two replicas at once."""

from __future__ import annotations

import uuid

import psycopg

from lab.harness import counts, run_summary, wait_for, wait_run_finished
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested, utc_now
from worker.store.locks import RUN_LOCKS

USERS, PAGE = 3000, 100
ENV = {"ASSETSYNC_JIRA_PAGE_SIZE": str(PAGE), "ASSETSYNC_BATCH_SIZE": "100"}


def lock_holder(database: str) -> int | None:
    """The backend that holds a run lock in this database."""
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s"
            " AND l.objsubid = 2 AND d.datname = current_database()",
            [RUN_LOCKS],
        ).fetchone()
    return int(row[0]) if row else None


def test_a_killed_run_lock_connection_stops_its_scan_and_the_run_ends_done_exactly(
    start_worker, broker, jira, database
):
    jira.add_sample_users(USERS)
    jira.set_delay(0.15, path_contains="/user/list")  # a scan long enough to cut
    first = start_worker(env=ENV)
    second = start_worker(env=ENV)
    # The same request twice (a producer that published again after a lost confirm, or
    # a redelivery): one replica scans, the other waits for the run lock.
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=utc_now(), requested_by="tests"
    )
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publisher.publish(request)
        publisher.publish(request)
    run_id = str(request.request_id)
    wait_for(lambda: broker.count(broker.topology.bulk_queue) == 0, what="both copies taken")
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["matched"] >= 8 * PAGE,
        what="the scan to be under way",
    )
    holder = lock_holder(database)
    assert holder is not None
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [holder])

    run = wait_run_finished(database, run_id, timeout=120)
    assert run["state"] == "done"
    assert counts(run) == {
        "matched": USERS,
        "created": USERS,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
        "missing": 0,
        "failed": 0,
    }
    # One scan of the directory, handed over once: the pages after the kill were read
    # by the new lock holder alone (from the checkpoint: the page in flight, and the
    # one read ahead, again), not by the old one too.
    pages = USERS // PAGE + 1
    assert jira.request_count("/user/list") <= pages + 3
    logs = first.log() + second.log()
    assert "the connection that holds its run lock is gone" in logs
    assert "(resuming)" in logs
    assert broker.dead_letters() == []
    assert first.proc.poll() is None and second.proc.poll() is None
