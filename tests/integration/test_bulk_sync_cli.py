"""``python -m producers.bulk_sync``: what an admin runs to sync many users at once.

No worker handles bulk runs yet, so these tests play the worker's part in SQL: they take
the published request off the bulk queue and record the run in ``sync_runs`` and
``sync_run_users`` as a worker would.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import psycopg
import pytest

from lab.harness import ROOT, Broker, wait_for
from schemas.topology import Topology
from worker.store import Change, runs

pytestmark = pytest.mark.timeout(90)

PROG = "python -m producers.bulk_sync"


# ------------------------------------------------------------------------ fixtures


class Cli:
    """Runs the admin script against the test's own broker names and database."""

    def __init__(self, *, amqp_url: str, prefix: str, database_url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        self.env.update(
            {
                "ASSETSYNC_AMQP_URL": amqp_url,
                "ASSETSYNC_AMQP_PREFIX": prefix,
                "ASSETSYNC_DATABASE_URL": database_url,
                "PYTHONUTF8": "1",
            }
        )
        self.started: list[subprocess.Popen[str]] = []

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producers.bulk_sync", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self, *args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "producers.bulk_sync", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture
def cli(broker: Broker, database: str) -> Iterator[Cli]:
    found = Cli(amqp_url=broker.url, prefix=broker.topology.prefix, database_url=database)
    # The queue must exist before the script publishes, for the test to read from it.
    broker.declare()
    yield found
    found.stop_all()
    # The script declares the default retry delays, not the test's: remove those too.
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        for queue in Topology(prefix=broker.topology.prefix).queues():
            channel.queue_delete(queue.name)


class PlayedWorker:
    """Records a bulk run the way a worker does (``worker.store.runs``): the run row, one row
    per matched user (outcome NULL), each outcome as the user is processed, then the
    final state."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self._conn: psycopg.Connection[Any] | None = None

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """What is recorded inside commits together: the script sees all of it or none."""
        with psycopg.connect(self.url) as conn:  # commits when the block ends
            self._conn = conn
            try:
                yield
            finally:
                self._conn = None

    def _execute(self, query: str, params: Iterable[Any] = ()) -> None:
        if self._conn is not None:
            self._conn.execute(query, list(params))
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(query, list(params))

    def start(
        self,
        request: dict[str, Any],
        *,
        state: str = "fanning_out",
        started_at: datetime | None = None,
    ) -> str:
        self._execute(
            "INSERT INTO sync_runs (id, requested_by, requested_at, username_prefix, groups,"
            " dry_run, state, started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                request["request_id"],
                request["requested_by"],
                request["requested_at"],
                request["username_prefix"],
                request["groups"],
                request["dry_run"],
                state,
                started_at or datetime.now(UTC),
            ],
        )
        return str(request["request_id"])

    def match(self, run_id: str, *jira_ids: str) -> None:
        with self._connection() as conn:
            runs.add_matched(conn, uuid.UUID(run_id), list(jira_ids))

    def process(
        self, run_id: str, jira_id: str, outcome: str, *, deactivated: bool = False
    ) -> None:
        with self._connection() as conn:
            if outcome == "failed":
                runs.record_failures(conn, uuid.UUID(run_id), [(jira_id, "Jira said 500")])
            else:
                change = Change(jira_id, 0, outcome, deactivated)  # type: ignore[arg-type]
                runs.record_outcomes(conn, uuid.UUID(run_id), [change])

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._conn is not None:
            yield self._conn
            return
        with psycopg.connect(self.url) as conn:  # commits when the block ends
            yield conn

    def set_state(self, run_id: str, state: str) -> None:
        self._execute("UPDATE sync_runs SET state = %s WHERE id = %s", [state, run_id])

    def finish(
        self, run_id: str, *, state: str = "done", error: str | None = None, missing: int = 0
    ) -> None:
        self._execute(
            "UPDATE sync_runs SET state = %s, error = %s, missing = %s, finished_at = now()"
            " WHERE id = %s",
            [state, error, missing, run_id],
        )


@pytest.fixture
def worker(database: str) -> PlayedWorker:
    return PlayedWorker(database)


def take_request(broker: Broker) -> dict[str, Any]:
    """The one bulk-sync request the script published."""
    [(body, _)] = wait_for(
        lambda: broker.drain(broker.topology.bulk_queue), what="a bulk-sync request"
    )
    return dict(json.loads(body))


def read_until(fd: int, wanted: str, *, timeout: float = 20.0) -> str:
    """Read a terminal's output until ``wanted`` shows up."""
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} on the terminal; it showed {seen!r}"
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 4096).decode(errors="replace")
    return seen


def run_users(
    worker: PlayedWorker, run_id: str, outcomes: dict[str, str], deactivated: Iterable[str] = ()
) -> None:
    worker.match(run_id, *outcomes)
    worker.set_state(run_id, "processing")
    for jira_id, outcome in outcomes.items():
        worker.process(run_id, jira_id, outcome, deactivated=jira_id in set(deactivated))


# ------------------------------------------------------------------------- request


def test_request_publishes_one_confirmed_message_with_the_filters(cli, broker):
    done = cli.run(
        *("--prefix", "a", "--group", "staff", "--group", "contractors"),
        *("--dry-run", "--by", "alice@admin-box"),
    )

    assert done.returncode == 0, done.stderr
    request = take_request(broker)
    assert done.stdout == f"run {request['request_id']} requested\n"
    assert request["type"] == "bulk-sync-requested" and request["schema_version"] == 1
    assert uuid.UUID(request["request_id"]).version == 4
    assert request["requested_by"] == "alice@admin-box"
    assert request["username_prefix"] == "a"
    assert request["groups"] == ["staff", "contractors"]
    assert request["dry_run"] is True
    requested_at = datetime.fromisoformat(request["requested_at"])
    assert abs(datetime.now(UTC) - requested_at) < timedelta(minutes=1)


def test_request_without_filters_asks_for_every_user_in_the_admins_name(cli, broker):
    done = cli.run()

    assert done.returncode == 0, done.stderr
    request = take_request(broker)
    assert request["username_prefix"] is None
    assert request["groups"] == []
    assert request["dry_run"] is False
    assert request["requested_by"] == f"{getpass.getuser()}@{socket.gethostname()}"


def test_each_request_is_a_new_run(cli, broker):
    first, second = cli.run(), cli.run()

    assert first.returncode == second.returncode == 0
    ids = [json.loads(body)["request_id"] for body, _ in broker.drain(broker.topology.bulk_queue)]
    assert len(set(ids)) == 2


# ------------------------------------------------------------------------- waiting


def test_json_reports_the_counts_and_exits_0_when_every_user_synced(cli, broker, worker):
    proc = cli.start("--json", "--prefix", "a")
    run_id = worker.start(take_request(broker))
    run_users(worker, run_id, {"u1": "created", "u2": "updated", "u3": "unchanged"}, ["u3"])
    worker.finish(run_id, missing=2)

    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 0, err
    summary = json.loads(out)  # the whole of stdout is one JSON object
    duration = summary.pop("duration_s")
    assert isinstance(duration, float) and 0 <= duration < 60
    assert summary == {
        "run_id": run_id,
        "state": "done",
        "dry_run": False,
        "matched": 3,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "deactivated": 1,
        "missing": 2,
        "failed": 0,
    }
    assert err == ""  # no progress for a script to parse around


def test_json_exits_1_when_a_user_failed(cli, broker, worker):
    proc = cli.start("--json")
    run_id = worker.start(take_request(broker))
    run_users(worker, run_id, {"u1": "created", "u2": "failed"})
    worker.finish(run_id)

    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 1, err
    summary = json.loads(out)
    assert (summary["state"], summary["matched"], summary["failed"]) == ("done", 2, 1)


def test_wait_exits_1_and_says_why_when_the_run_failed(cli, broker, worker):
    proc = cli.start("--wait")
    run_id = worker.start(take_request(broker))
    worker.finish(run_id, state="failed", error="Jira answered 401:\nbad credentials")

    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 1
    assert f"run {run_id}  failed" in out
    assert err.splitlines()[-1] == f"{PROG}: run failed: Jira answered 401: bad credentials"


def test_wait_shows_progress_then_a_summary_table(cli, broker, worker):
    proc = cli.start("--wait", "--dry-run")
    request_line = proc.stdout.readline()
    assert proc.stderr.readline() == "waiting for a worker to pick up the request…\n"
    request = take_request(broker)
    assert request_line == f"run {request['request_id']} requested\n"
    with worker.at_once():
        run_id = worker.start(request, state="processing")
        worker.match(run_id, "u1", "u2", "u3", "u4")
        worker.process(run_id, "u1", "created")
        worker.process(run_id, "u2", "failed")

    progress = proc.stderr.readline()
    assert progress.startswith("processing") and "2/4" in progress and "failed 1" in progress

    worker.process(run_id, "u3", "updated", deactivated=True)
    worker.process(run_id, "u4", "unchanged")
    worker.finish(run_id, missing=1)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 1  # a user failed
    assert "\r" not in err  # not a terminal: plain lines only
    table = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in out.splitlines()[1:-1])}
    assert float(table.pop("duration (s)")) >= 0
    assert table == {
        "matched": "4",
        "created": "1",
        "updated": "1",
        "unchanged": "1",
        "deactivated": "1",
        "missing": "1",
        "failed": "1",
    }
    assert out.splitlines()[0] == f"run {run_id}  done"
    assert out.splitlines()[-1] == "(dry run: nothing was written; counts say what would happen)"


def test_wait_on_a_terminal_redraws_one_progress_line(cli, broker, worker):
    terminal, its_end = pty.openpty()
    try:
        proc = cli.start("--wait", stderr=its_end)
        os.close(its_end)
        run_id = worker.start(take_request(broker))
        worker.match(run_id, "u1", "u2")
        shown = read_until(terminal, "0/2+")  # still fanning out: the total may grow
        worker.set_state(run_id, "processing")
        worker.process(run_id, "u1", "created")
        shown += read_until(terminal, "1/2 ")
        worker.process(run_id, "u2", "created")
        worker.finish(run_id)
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(terminal)

    assert proc.returncode == 0
    assert "\rfanning_out" in shown and "\rprocessing" in shown
    assert "users/s" in shown and "ETA" in shown
    assert out.splitlines()[1] == f"run {run_id}  done"


def test_wait_gives_up_after_the_timeout_with_one_line(cli, broker):
    done = cli.run("--json", "--timeout", "1")

    assert done.returncode == 1
    request = take_request(broker)
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{PROG}: gave up after 1s: no worker has picked up run {request['request_id']} yet"
    ]


# -------------------------------------------------------------------------- status


def test_status_lists_the_recent_runs_newest_first(cli, worker):
    now = datetime.now(UTC)
    old = worker.start(_request(by="bob@box"), started_at=now - timedelta(hours=2))
    run_users(worker, old, {"u1": "created", "u2": "failed"})
    worker.finish(old)
    new = worker.start(_request(by="alice@box", dry_run=True), started_at=now)

    listed = cli.run("status")
    as_json = cli.run("status", "--json")

    assert listed.returncode == as_json.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["run", "state", "requested"]
    assert [row.split()[:3] for row in rows] == [
        [new, "fanning_out", "alice@box"],
        [old, "done", "bob@box"],
    ]
    assert rows[1].split()[-4:] == ["2", "2", "1", "no"]  # matched, done, failed, dry run
    assert [(r["run_id"], r["dry_run"], r["failed"]) for r in json.loads(as_json.stdout)] == [
        (new, True, 0),
        (old, False, 1),
    ]


def test_status_of_one_run_shows_its_summary(cli, worker):
    run_id = worker.start(_request())
    run_users(worker, run_id, {"u1": "updated"})
    worker.finish(run_id)

    shown = cli.run("status", run_id)
    as_json = cli.run("status", run_id, "--json")

    assert shown.returncode == as_json.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"run {run_id}  done"
    assert "updated" in shown.stdout
    assert json.loads(as_json.stdout)["updated"] == 1


def test_status_of_an_unknown_run_exits_1_with_one_line(cli):
    unknown = str(uuid.uuid4())

    done = cli.run("status", unknown)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"{PROG}: no run {unknown}"]


def test_status_shows_what_a_request_said_escaped_never_raw(cli, worker):
    """Seen: ``requested_by`` comes from any unsigned request, and status printed it raw:
    a title change, a cleared screen and a forged row reached the operator's terminal."""
    forged = "eve\x1b]0;pwned\x07\x1b[2J\nrun 00000000-0000-0000-0000-000000000000  done"
    run_id = worker.start(_request(by=forged))
    worker.finish(run_id, state="failed", error="Jira says\x1b[31m no\nFORGED: ok")

    listed = cli.run("status")
    shown = cli.run("status", run_id)

    for done in (listed, shown):
        out = done.stdout + done.stderr
        assert not any(c in out for c in "\x1b\x07\r"), out
    _header, row = listed.stdout.splitlines()  # one run, one row
    assert row.split()[:3] == [run_id, "failed", "eve\\x1b]0;pwned\\x07\\x1b[2J\\nrun"]
    assert shown.stderr.splitlines() == [f"{PROG}: run failed: Jira says\\x1b[31m no FORGED: ok"]


def _request(*, by: str = "admin@box", dry_run: bool = False) -> dict[str, Any]:
    return {
        "request_id": str(uuid.uuid4()),
        "requested_by": by,
        "requested_at": datetime.now(UTC),
        "username_prefix": None,
        "groups": [],
        "dry_run": dry_run,
    }


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args",
    [
        ("--prefix", ""),
        ("--group", ""),
        ("--by", ""),
        ("--prefix", "a" * 256),
        ("--timeout", "5"),
        ("--wait", "--timeout", "0"),
        ("--bogus",),
        ("status", "not-a-run-id"),
        ("status", "--prefix", "a"),
    ],
    ids=[
        "empty prefix",
        "empty group",
        "empty requester",
        "long prefix",
        "timeout without wait",
        "zero timeout",
        "unknown option",
        "malformed run id",
        "status with request options",
    ],
)
def test_usage_errors_exit_2_with_one_line_and_publish_nothing(cli, broker, args):
    done = cli.run(*args)

    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert broker.count(broker.topology.bulk_queue) == 0


def test_unreachable_broker_exits_1_with_one_line(cli):
    done = cli.run(ASSETSYNC_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F")

    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"{PROG}: cannot reach RabbitMQ at 127.0.0.1:1 (AMQPConnectionError)"
    )


@pytest.mark.parametrize("args", [("--wait",), ("status",)], ids=["wait", "status"])
def test_unreachable_database_exits_1_with_one_line_before_requesting(cli, broker, args):
    done = cli.run(*args, ASSETSYNC_DATABASE_URL="postgresql://postgres@127.0.0.1:1/assetsync")

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{PROG}: cannot reach the asset store database: ")
    assert broker.count(broker.topology.bulk_queue) == 0


def test_database_without_migrations_says_to_migrate(cli, infra):
    # The server's maintenance database has none of assetsync's tables.
    done = cli.run("status", ASSETSYNC_DATABASE_URL=infra.database_url)

    assert done.returncode == 78  # the deployment is not ready: a person must act
    assert done.stderr.splitlines() == [
        f"{PROG}: the asset store has no sync runs table: run `python -m worker migrate`"
    ]
