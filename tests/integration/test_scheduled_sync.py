"""``python -m producers.bulk_sync --unless-recent DURATION``: what a cron job runs, so
that runs of every user never pile up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import psycopg
import pytest

from lab.harness import ROOT, Broker
from schemas.topology import Topology
from tests.policies import broker_policy

pytestmark = pytest.mark.timeout(120)

PROG = "python -m producers.bulk_sync"


class Scheduler:
    """Runs the admin script as a cron job would, against the test's broker and database."""

    def __init__(self, broker: Broker, database: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        self.env.update(
            {
                "ASSETSYNC_AMQP_URL": broker.url,
                "ASSETSYNC_AMQP_PREFIX": broker.topology.prefix,
                "ASSETSYNC_DATABASE_URL": database,
            }
        )

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "producers.bulk_sync", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=90
        )


@pytest.fixture
def scheduler(broker: Broker, database: str) -> Iterator[Scheduler]:
    broker.declare()
    yield Scheduler(broker, database)
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        for queue in Topology(prefix=broker.topology.prefix).queues():
            channel.queue_delete(queue.name)


def past_run(
    database: str,
    *,
    state: str,
    ended: timedelta | None = None,
    prefix: str | None = None,
    dry_run: bool = False,
) -> str:
    """A run as a worker leaves it, ``ended`` ago (started a minute before)."""
    run_id = str(uuid.uuid4())
    finished = datetime.now(UTC) - ended if ended is not None else None
    started = (finished or datetime.now(UTC)) - timedelta(minutes=1)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sync_runs (id, requested_by, requested_at, username_prefix, dry_run,"
            " state, started_at, finished_at) VALUES (%s, 'cron', %s, %s, %s, %s, %s, %s)",
            [run_id, started, prefix, dry_run, state, started, finished],
        )
    return run_id


def runs(database: str) -> list[dict[str, Any]]:
    with psycopg.connect(database, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute("SELECT id, state, requested_by FROM sync_runs").fetchall()


def requests(broker: Broker) -> list[dict[str, Any]]:
    return [json.loads(body) for body, _ in broker.drain(broker.topology.bulk_queue)]


def test_requests_a_run_of_every_user_when_none_ran_recently(scheduler, broker, database):
    done = scheduler.run("--unless-recent", "20h", "--by", "cron@ops")

    assert done.returncode == 0, done.stderr
    [request] = requests(broker)
    assert done.stdout == f"run {request['request_id']} requested\n"
    assert (request["username_prefix"], request["groups"], request["dry_run"]) == (None, [], False)
    assert request["requested_by"] == "cron@ops"
    # The run exists before any worker picked it up: the next schedule sees it.
    assert runs(database) == [
        {"id": uuid.UUID(request["request_id"]), "state": "fanning_out", "requested_by": "cron@ops"}
    ]


def test_a_run_still_waiting_for_a_worker_is_not_requested_again(scheduler, broker):
    first = scheduler.run("--unless-recent", "20h")
    second = scheduler.run("--unless-recent", "20h")
    as_json = scheduler.run("--unless-recent", "20h", "--json")

    assert first.returncode == second.returncode == as_json.returncode == 0
    [request] = requests(broker)
    run_id = request["request_id"]
    assert second.stdout.startswith(f"not requested: run {run_id} is fanning_out (0/0 done, ")
    assert len(second.stdout.splitlines()) == 1 and second.stderr == ""
    skipped = json.loads(as_json.stdout)
    assert (skipped["requested"], skipped["run"]["run_id"]) == (False, run_id)


def test_a_run_done_within_the_window_stops_a_new_one_an_older_one_does_not(
    scheduler, broker, database
):
    earlier = past_run(database, state="done", ended=timedelta(hours=2))

    within = scheduler.run("--unless-recent", "3h")
    past_it = scheduler.run("--unless-recent", "1h30m")

    assert within.returncode == 0
    assert within.stdout == f"not requested: run {earlier} ended done 2h00m ago, within 3h00m\n"
    assert past_it.returncode == 0
    assert past_it.stdout.startswith("run ") and past_it.stdout.endswith(" requested\n")
    assert len(requests(broker)) == 1


def test_filtered_dry_and_failed_runs_do_not_count(scheduler, broker, database):
    past_run(database, state="done", ended=timedelta(minutes=1), prefix="a")
    past_run(database, state="done", ended=timedelta(minutes=1), dry_run=True)
    past_run(database, state="processing", prefix="b")
    past_run(database, state="failed", ended=timedelta(minutes=1))

    done = scheduler.run("--unless-recent", "20h")

    assert done.returncode == 0
    assert done.stdout.endswith(" requested\n")
    assert len(requests(broker)) == 1


def test_schedulers_starting_together_request_one_run(scheduler, broker, database):
    started = [
        subprocess.Popen(
            scheduler.command("--unless-recent", "1d"),
            cwd=ROOT,
            env=scheduler.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=90) for proc in started]

    assert [proc.returncode for proc in started] == [0, 0, 0, 0]
    said = sorted(out.split()[0] for out, _ in outputs)
    assert said == ["not", "not", "not", "run"]
    assert len(requests(broker)) == 1
    assert len(runs(database)) == 1


def test_a_request_the_broker_refuses_leaves_no_run_behind(scheduler, broker, database):
    bulk = broker.topology.bulk_queue
    broker.publish_raw(b"{}", routing_key="bulk-sync-requested")  # the one a full queue takes
    with broker_policy(f"{bulk}-full", bulk, {"max-length": 0}):
        refused = scheduler.run("--unless-recent", "20h")

    assert refused.returncode == 1
    assert refused.stderr == f"{PROG}: RabbitMQ refused the bulk-sync-requested message\n"
    assert runs(database) == []
    assert scheduler.run("--unless-recent", "20h").stdout.endswith(" requested\n")


def test_a_worker_runs_the_scheduled_request_and_the_next_schedule_waits(
    scheduler, start_worker, jira, database
):
    jira.add_user("jdoe", display_name="Jane Doe")
    start_worker()

    first = scheduler.run("--unless-recent", "20h", "--json")
    again = scheduler.run("--unless-recent", "20h")

    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["state"], summary["matched"], summary["created"]) == ("done", 1, 1)
    assert again.returncode == 0
    assert again.stdout.startswith(f"not requested: run {summary['run_id']} ended done ")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--prefix", "a"), "--unless-recent requests real runs of every user"),
        (("--dry-run",), "--unless-recent requests real runs of every user"),
        (("--group", "staff"), "--unless-recent requests real runs of every user"),
    ],
)
def test_unless_recent_takes_no_filters(scheduler, broker, args, error):
    done = scheduler.run("--unless-recent", "20h", *args)

    assert done.returncode == 2
    assert done.stderr.startswith(f"{PROG}: {error}")
    assert requests(broker) == []


@pytest.mark.parametrize("duration", ["soon", "0h", "-5m", "20x", ""])
def test_a_bad_duration_is_a_usage_error(scheduler, duration):
    done = scheduler.run("--unless-recent", duration)

    assert done.returncode == 2
    assert done.stderr.startswith(f"{PROG}: argument --unless-recent: ")
