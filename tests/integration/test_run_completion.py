"""Every bulk run ends, and says what happened: the update that closes it failing once,
a per-user message lost, a scheduler that must not wait on a dead run.

Judged by what users see: the run's final state and counts (every matched user done or
failed, with the reason), one asset per user, nothing dead-lettered for a passing cause,
the worker still running. The recovery times printed (``-s``) are the figures of
docs/faults.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pika
import psycopg
import pytest

from lab.harness import (
    ROOT,
    Broker,
    request_bulk,
    run_summary,
    signed,
    user_assets,
    wait_for,
    wait_run_finished,
)
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested, JiraUser, user_sync_bodies
from worker.store import locks, runs

pytestmark = pytest.mark.timeout(180)

FAST = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}


def test_a_run_whose_closing_update_fails_once_still_ends_done(
    start_worker, broker, jira, database
):
    """Seen: the update that closes the run failed once with 40001 after the last batch
    committed; the retried batch applied nothing, checked nothing, and the run stayed
    ``processing`` with matched 3,000 = done 3,000 for good."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE closing_fails")
        conn.execute(
            "CREATE FUNCTION fail_closing_once() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN"
            "  IF NEW.state = 'done' AND OLD.state = 'processing'"
            "     AND nextval('closing_fails') = 1 THEN"  # a sequence: not rolled back
            "   RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';"
            "  END IF;"
            "  RETURN NEW;"
            " END $$"
        )
        conn.execute(
            "CREATE TRIGGER fail_closing_once BEFORE UPDATE ON sync_runs"
            " FOR EACH ROW EXECUTE FUNCTION fail_closing_once()"
        )
    jira.add_sample_users(1000)
    worker = start_worker(env=FAST)

    run_id = request_bulk(broker)
    failed_at = wait_for(lambda: _fired(database) and time.monotonic(), what="the failed close")
    run = wait_run_finished(database, run_id, timeout=60)
    print(f"\nclosing update failed once: run done {time.monotonic() - failed_at:.1f} s after")

    assert run["state"] == "done", run["error"]
    assert (run["matched"], run["done"], run["created"], run["failed"]) == (1000, 1000, 1000, 0)
    assert len({a["jira_id"] for a in user_assets(database)}) == len(user_assets(database)) == 1000
    assert broker.count(broker.topology.dead_queue) == 0
    assert worker.proc.poll() is None


def _fired(database: str) -> bool:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT is_called FROM closing_fails").fetchone()
        return bool(row and row[0])


STALL = {"ASSETSYNC_RUN_STALL_AFTER": "12"}  # the test topology's delays are under a second


def test_a_run_with_a_lost_message_ends_failed_by_the_stall_bound_and_schedules_go_on(
    start_worker, broker, database
):
    """A run's per-user message is lost (here: never published): the run ends ``failed``
    past ``ASSETSYNC_RUN_STALL_AFTER``, that user counted failed with the reason; until
    then ``status`` and ``--unless-recent`` say how long it has been idle, after it
    ``--unless-recent`` requests a new run; the lost message, coming after all, is
    still applied."""
    worker = start_worker(env=STALL)
    users = [JiraUser(jira_id=f"JIRAUSER{n}", name=f"user{n}") for n in range(10)]
    run_id = _open_run(database, [u.jira_id for u in users])
    _publish(broker, database, run_id, users[:9])  # the tenth is lost
    wait_for(lambda: run_summary(database, run_id)["done"] == 9, what="the nine users")
    last_progress = time.monotonic()

    scheduler = _Scheduler(broker, database)
    waiting = scheduler.run("--unless-recent", "1h")
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.startswith(f"not requested: run {run_id} is processing (9/10 done")
    assert "last progress" in waiting.stdout
    shown = json.loads(scheduler.run("status", run_id, "--json").stdout)
    assert shown["state"] == "processing" and shown["idle_s"] >= 0

    run = wait_run_finished(database, run_id, timeout=60)
    print(
        f"\nlost message: run ended {time.monotonic() - last_progress:.1f} s after its last progress"
    )
    assert run["state"] == "failed"
    assert run["error"].startswith("stalled: no progress for ")
    assert "1 users left unprocessed, counted failed" in run["error"]
    assert (run["matched"], run["done"], run["created"], run["failed"]) == (10, 10, 9, 1)
    assert _user_error(database, run_id, "JIRAUSER9").endswith("its message never came back")
    assert f"bulk run {run_id} stalled" in worker.log()
    status = scheduler.run("status", run_id)
    assert "failed" in status.stdout and "stalled: no progress" in status.stderr

    requested = scheduler.run("--unless-recent", "1h")
    assert requested.returncode == 0, requested.stderr
    assert requested.stdout.startswith("run ") and requested.stdout.endswith(" requested\n")

    _publish(broker, database, run_id, users[9:])  # the lost message, late
    wait_for(lambda: len(user_assets(database)) == 10, what="the late user's asset")
    wait_for(lambda: run_summary(database, run_id)["failed"] == 0, what="the late outcome")
    late = run_summary(database, run_id)
    assert (late["state"], late["done"], late["created"]) == ("failed", 10, 10)
    assert broker.count(broker.topology.dead_queue) == 0
    assert worker.proc.poll() is None


def _open_run(database: str, jira_ids: list[str]) -> str:
    """A run of every user, fanned out (as a worker leaves it after its scan)."""
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=datetime.now(UTC), requested_by="tests"
    )
    with psycopg.connect(database) as conn:
        runs.open_run(conn, request)
        runs.add_matched(conn, request.request_id, jira_ids)
        runs.end_fan_out(conn, request.request_id)
    return str(request.request_id)


def _publish(broker: Broker, database: str, run_id: str, users: list[JiraUser]) -> None:
    bodies = user_sync_bodies(
        run_id=uuid.UUID(run_id), dry_run=False, fetched_at=datetime.now(UTC), users=users
    )
    for body in bodies:
        broker.publish_raw(body, routing_key="user-sync", headers=signed(database, body))


def _user_error(database: str, run_id: str, jira_id: str) -> str:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT error FROM sync_run_users WHERE run_id = %s AND jira_id = %s",
            [run_id, jira_id],
        ).fetchone()
    assert row is not None
    return str(row[0])


class _Scheduler:
    """The admin script, as a cron job runs it, on the test's broker and database."""

    def __init__(self, broker: Broker, database: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        self.env.update(
            ASSETSYNC_AMQP_URL=broker.url,
            ASSETSYNC_AMQP_PREFIX=broker.topology.prefix,
            ASSETSYNC_DATABASE_URL=database,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producers.bulk_sync", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def test_a_request_redelivered_while_another_replica_holds_its_run_lock_is_never_acked(
    start_worker, broker, jira, database
):
    """Seen: a replica that lost its broker connection mid-scan kept the run lock; the
    redelivered request waited 40 s for it, was acked, and when the owner failed the
    run stayed ``fanning_out`` for good. Here the test is that owner: it holds the run's
    lock well past the 40 s, then lets go (as a failing owner does)."""
    jira.add_sample_users(300)
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=datetime.now(UTC), requested_by="tests"
    )
    run_id = str(request.request_id)
    with psycopg.connect(database) as conn:
        runs.open_run(conn, request)  # the owner started it...
    owner = psycopg.connect(database, autocommit=True)
    assert locks.try_lock_run(owner, request.request_id)  # ...and still holds its lock
    worker = start_worker(env=FAST)
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publisher.publish(request)

    wait_for(lambda: "its request is postponed" in worker.log(), timeout=90, what="a postponement")
    assert run_summary(database, run_id)["state"] == "fanning_out"
    owner.close()  # the owner fails: its session, and so the lock, ends
    released = time.monotonic()

    run = wait_run_finished(database, run_id, timeout=90)
    print(
        f"\nrun lock held past the wait: run done {time.monotonic() - released:.1f} s after release"
    )
    assert run["state"] == "done", run["error"]
    assert (run["matched"], run["done"], run["created"], run["failed"]) == (300, 300, 300, 0)
    assert len(user_assets(database)) == 300
    assert broker.count(broker.topology.dead_queue) == 0
    assert worker.proc.poll() is None


def test_a_resumed_fan_out_takes_its_filters_and_dry_run_from_the_stored_run(
    start_worker, broker, jira, database
):
    """The request that resumes a run may say otherwise (a replayed or forged copy with
    the run's id): what the run matches, and whether it writes, is what was stored."""
    jira.add_sample_users(50)
    for n in range(5):
        jira.add_user(f"alice{n}")
    stored = BulkSyncRequested(
        request_id=uuid.uuid4(),
        requested_at=datetime.now(UTC),
        requested_by="tests",
        username_prefix="alice",
    )
    with psycopg.connect(database) as conn:
        runs.open_run(conn, stored)  # a scan that was under way when its replica died
    resuming = stored.model_copy(update={"username_prefix": None, "dry_run": True})
    start_worker(env=FAST)
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publisher.publish(resuming)

    run = wait_run_finished(database, str(stored.request_id), timeout=60)
    assert run["state"] == "done", run["error"]
    assert (run["matched"], run["created"], run["dry_run"]) == (5, 5, False)
    assert sorted(a["fields"]["Username"] for a in user_assets(database)) == [
        f"alice{n}" for n in range(5)
    ]


def test_only_signed_dead_letters_count_a_user_failed(start_worker, broker, database):
    """Anyone who may publish to the dead exchange could otherwise fail a run's users:
    an unsigned copy changes no count (its dead letter stays for operators)."""
    worker = start_worker()
    users = [JiraUser(jira_id=f"JIRAUSER{n}", name=f"user{n}") for n in range(2)]
    run_id = _open_run(database, [u.jira_id for u in users])
    death = {"x-death": [{"queue": broker.topology.user_sync_queue, "reason": "delivery_limit"}]}
    forged, real = user_sync_bodies(
        run_id=uuid.UUID(run_id), dry_run=False, fetched_at=datetime.now(UTC), users=users
    )
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        for body, headers in ((forged, death), (real, {**death, **signed(database, real)})):
            channel.basic_publish(
                broker.topology.dead_exchange,
                "user-sync",
                body,
                pika.BasicProperties(content_type="application/json", headers=headers),
            )

    wait_for(lambda: run_summary(database, run_id)["failed"] == 1, what="the signed copy")
    assert "delivery_limit" in _user_error(database, run_id, "JIRAUSER1")
    wait_for(lambda: "not used (the dead queue keeps it): unsigned" in worker.log(), what="log")
    run = run_summary(database, run_id)
    assert (run["state"], run["done"], run["failed"]) == ("processing", 1, 1)
    assert broker.count(broker.topology.dead_queue) == 2
    assert broker.count(broker.topology.given_up_queue) == 0


def test_a_run_whose_request_is_gone_while_fanning_out_ends_by_the_stall_bound(
    start_worker, database
):
    """A run left ``fanning_out`` with no replica scanning it (its request dead-lettered
    by RabbitMQ, say) ends ``failed`` by the bound, the users it matched counted failed."""
    worker = start_worker(env=STALL)
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=datetime.now(UTC), requested_by="tests"
    )
    with psycopg.connect(database) as conn:
        runs.open_run(conn, request)
        runs.add_matched(conn, request.request_id, ["JIRAUSER1", "JIRAUSER2"])
    started = time.monotonic()
    run = wait_run_finished(database, str(request.request_id), timeout=60)
    print(f"\nrequest lost while fanning out: run ended {time.monotonic() - started:.1f} s after")
    assert run["state"] == "failed"
    assert run["error"].startswith("stalled: no progress for ")
    assert "while scanning Jira" in run["error"]
    assert (run["matched"], run["done"], run["failed"]) == (2, 2, 2)
    assert worker.proc.poll() is None
