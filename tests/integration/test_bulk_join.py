"""Identical bulk requests while a run is open join it: however many arrive, at whichever
replica, one scan; the requester follows the run they joined.

Seen on 0.2.0: anyone who may publish ``bulk-sync-requested`` could start any number of
full scans of Jira at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from lab.harness import ROOT, counts, wait_for, wait_run_finished
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested
from worker.store import runs

pytestmark = pytest.mark.timeout(180)


def request(**fields: object) -> BulkSyncRequested:
    return BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=datetime.now(UTC), requested_by="eve", **fields
    )


def rows(database: str, query: str) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return conn.execute(query).fetchall()


def test_identical_requests_while_a_run_is_open_make_one_run(start_worker, broker, jira, database):
    jira.add_sample_users(120)
    for _ in range(2):
        start_worker(env={"ASSETSYNC_JIRA_PAGE_SIZE": "20"})
    jira.set_delay(1.0, path_contains="/user")  # open until the joins are seen (then 0)
    identical = [request() for _ in range(6)]
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        for message in identical:
            publisher.publish(message)
        wait_for(
            lambda: len(rows(database, "SELECT 1 FROM sync_run_joins")) == 5,
            timeout=60,
            what="five requests joining the first",
        )
        publisher.publish(request(dry_run=True))  # not identical: a run of its own

    (full,) = {r for (r,) in rows(database, "SELECT run_id FROM sync_run_joins")}
    assert {m.request_id for m in identical} - {full} == {
        r for (r,) in rows(database, "SELECT request_id FROM sync_run_joins")
    }
    jira.set_delay(0)
    done = wait_run_finished(database, str(full))
    assert done["state"] == "done"
    assert counts(done)["failed"] == 0 and done["matched"] == done["done"] == 120
    wait_for(lambda: len(rows(database, "SELECT 1 FROM sync_runs")) == 2, what="the dry run")
    assert len(rows(database, "SELECT 1 FROM assets")) == 120  # each user once


def test_replicas_opening_identical_requests_at_once_make_one_run(database):
    """Two connections open identical requests at the same instant, many times over: one
    inserts, the other waits for its commit on the unique index and joins."""
    for _ in range(20):
        pair = [
            request(username_prefix="Ab", groups=["x", "y"]),
            request(username_prefix="aB", groups=["y", "x", "x"]),
        ]
        start = threading.Barrier(2)
        opened: list[runs.Run] = []

        def open_one(message: BulkSyncRequested, start=start, opened=opened) -> None:
            with psycopg.connect(database) as conn:
                start.wait()
                opened.append(runs.open_run(conn, message))

        threads = [threading.Thread(target=open_one, args=(m,)) for m in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(run.joined for run in opened) == [False, True]
        assert len({run.id for run in opened}) == 1
        with psycopg.connect(database) as conn:  # end it, so the next pair opens anew
            conn.execute("UPDATE sync_runs SET state = 'done'")
    assert len(rows(database, "SELECT 1 FROM sync_runs")) == 20


def test_the_requester_of_a_joined_request_is_told_and_follows_that_run(
    start_worker, broker, jira, database
):
    jira.add_sample_users(60)
    for _ in range(2):  # one fans the first request out, the other takes the second
        start_worker(env={"ASSETSYNC_JIRA_PAGE_SIZE": "10"})
    jira.set_delay(2.0, path_contains="/user")  # open until the join is seen (then 0)
    first = request()
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publisher.publish(first)
    wait_for(lambda: rows(database, "SELECT 1 FROM sync_runs"), what="the first run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_AMQP_URL=broker.url,
        ASSETSYNC_AMQP_PREFIX=broker.topology.prefix,
        ASSETSYNC_DATABASE_URL=database,
    )
    waiting = subprocess.Popen(
        [sys.executable, "-m", "producers.bulk_sync", "--wait", "--by", "mallory"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: rows(database, "SELECT 1 FROM sync_run_joins"), timeout=60, what="a join")
    jira.set_delay(0)
    out, err = waiting.communicate(timeout=120)

    assert waiting.returncode == 0, err
    requested = out.splitlines()[0].split()[1]
    joined = f"request {requested} joined run {first.request_id}, open for the same filters"
    assert joined in err, err
    assert "(requested by eve); following that run" in err
    assert f"run {first.request_id}  done" in out
    assert len(rows(database, "SELECT 1 FROM sync_runs")) == 1

    status = subprocess.run(
        [sys.executable, "-m", "producers.bulk_sync", "status", requested, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = json.loads(status.stdout)
    assert (shown["run_id"], shown["request_id"], shown["joined"]) == (
        str(first.request_id),
        requested,
        True,
    )
