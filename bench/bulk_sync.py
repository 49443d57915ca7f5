"""Bulk sync end to end, against the raw ceiling of this machine, in one run.

``python -m bench.bulk_sync [--users 20000] [--workers 2] [--page-size 1000]
[--batch-size 200] [--logins-per-s 5] [--json]``

Goal (the issue): a bulk sync of N users with 2 worker processes reaches at least 50% of
the raw ceiling, i.e. of consume -> batched upsert -> ack of N pre-published messages
with no Jira and no mapping (``bench.raw_ceiling``, measured first in the same run, in
the same fresh database, with the same worker count and batch size). The upsert is the
asset store's own (sink ``store``: each message one user asset, already mapped), so the
ratio says what scanning Jira, publishing a message per user, mapping and run tracking
cost on top of storing the assets. For comparison the bare ceiling (sink ``table``: one
``(id, jsonb)`` row per message, the cheapest write there is) is measured too, and the
bulk sync's share of it printed beside.

What is timed in the bulk phase: the fake Jira (Data Center flavour, with ``/user/list``)
gets N sample users (setup timed separately, not counted), the database is migrated and
``--workers`` real ``python -m worker`` processes are started and waited for until both
of their loops consume. The clock starts just before one ``bulk-sync-requested`` is
published and stops when the run's state in ``sync_run_summary`` is ``done`` (polled
every 0.1 s; selecting only ``state`` keeps the poll an index lookup). users/s = N /
elapsed. Jira requests per user = requests the fake Jira served while the clock ran / N
(login fetches included, and broken down).

Meanwhile ``bench.logins`` publishes logins at ``--logins-per-s`` and measures how long
each takes to show in ``user_assets``. Afterwards the workers' peak RSS (``VmHWM``) is
read, they get SIGTERM and must exit 0, and the result is checked: N matched, none
failed, N distinct user assets, every login's marker won, and every user the run did
not count as created is one a login created first.

The raw phase's end is exact (its consumers record their last commit); the bulk phase's
is the first 0.1 s poll that sees ``done``, so it reads up to 0.1 s long.

Diagnostics printed with the figures, to tell the product from the machine: ten logins
one after the other before the run (idle latency, to compare with); CPU milliseconds per
message of each phase by process group (workers or raw consumers, PostgreSQL, RabbitMQ,
this process, which serves the fake Jira and runs the login probes, and the whole
machine) and how busy the cores were; the 1-minute load average before each phase
(other users of the shared servers show up there). ``--py-spy DIR`` also records where
the workers spend their time (``bench.worker_profile``).

Before each timed phase the database is checkpointed, so neither phase pays for the
other's writes. Everything made is removed at the end: database, queues, exchanges,
processes and (unless ``--keep-logs``) their logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pika
import psycopg
from psycopg.rows import dict_row

from bench import raw_ceiling
from bench.infra import (
    DEFAULT_ADMIN_DATABASE_URL,
    DEFAULT_AMQP_URL,
    Child,
    CpuMeter,
    Servers,
    checkpoint,
    delete_broker_objects,
    fresh_database,
    rss_mib,
    unique_suffix,
    wait_until,
)
from bench.logins import LoginProber, LoginStats
from bench.statements import Statements, format_statements
from bench.worker_profile import Recorder
from demo.fake_jira import FakeJira
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested, utc_now
from schemas.topology import Topology
from worker.store.migrate import migrate

# Issue 19's goals, each a ratio of one run: the bulk sync's share of the store ceiling,
# the store ceiling's share of the bare one, and users per second for a million in 100 s.
GOAL_BULK_VS_STORE = 0.7
GOAL_STORE_VS_BARE = 0.6
GOAL_USERS_PER_S = 10_000
RAW_SINKS = ("table", "store")  # the bare ceiling first: it leaves no rows behind
IDLE_LOGINS = 10  # one after the other, before the run: the latency to compare with
RUN_STATE = "SELECT state FROM sync_run_summary WHERE run_id = %s"
RUN_COUNTS = ("matched", "created", "updated", "unchanged", "failed")


@dataclass(frozen=True)
class Options:
    users: int
    workers: int
    page_size: int
    batch_size: int
    logins_per_s: float
    amqp_url: str
    admin_database_url: str
    keep_logs: bool
    as_json: bool
    py_spy: Path | None = None
    metrics: bool = False
    statements: int = 0
    py_spy_on_cpu: bool = False
    queue_ahead: int | None = None  # ASSETSYNC_BULK_QUEUE_AHEAD; None: the worker's default


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class BulkResult:
    elapsed_s: float
    fan_out_s: float | None
    jira_setup_s: float
    migrate_s: float
    workers_ready_s: float
    summary: dict[str, Any]
    jira_requests: dict[str, int]
    logins: LoginStats
    idle_logins: LoginStats
    worker_peak_rss_mib: list[float]
    worker_exit_codes: list[int]
    cpu: CpuMeter
    statements: list[dict[str, Any]]
    login_targets: dict[str, str] = field(default_factory=dict)  # jira_id -> last marker
    backlog: Backlog | None = None


# -- the bulk phase ---------------------------------------------------------------------------


def start_fake_jira(users: int) -> tuple[FakeJira, float]:
    started = time.perf_counter()
    jira = FakeJira(flavor="datacenter")
    jira.add_sample_users(users)
    jira.start()
    return jira, time.perf_counter() - started


def worker_env(
    opts: Options, topology: Topology, database_url: str, jira_url: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_AMQP_URL=opts.amqp_url,
        ASSETSYNC_AMQP_PREFIX=topology.prefix,
        ASSETSYNC_DATABASE_URL=database_url,
        ASSETSYNC_JIRA_URL=jira_url,
        ASSETSYNC_JIRA_USERNAME="admin",
        ASSETSYNC_JIRA_TOKEN="secret",
        ASSETSYNC_JIRA_PAGE_SIZE=str(opts.page_size),
        ASSETSYNC_BATCH_SIZE=str(opts.batch_size),
        ASSETSYNC_HEALTH_FILE="",
        # INFO only for the readiness line ("consuming", once per loop); the worker logs
        # no line per user-sync batch, so this costs nothing measurable.
        ASSETSYNC_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    if opts.queue_ahead is not None:
        env["ASSETSYNC_BULK_QUEUE_AHEAD"] = str(opts.queue_ahead)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_workers(
    count: int, env: dict[str, str], log_dir: Path, *, metrics: bool = False
) -> list[Child]:
    """``count`` workers; with ``metrics``, each serves its probes and metrics on a port of
    its own (``ASSETSYNC_METRICS_PORT``), to measure what that costs."""
    workers = [
        Child(
            f"worker-{i}",
            ["worker"],
            {**env, "ASSETSYNC_METRICS_PORT": str(_free_port())} if metrics else env,
            log_dir / f"worker-{i}.log",
        ).start()
        for i in range(count)
    ]
    for w in workers:
        w.wait_for_log("consuming", count=2, timeout=60)
    return workers


def request_bulk(amqp_url: str, topology: Topology) -> str:
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=utc_now(), requested_by="bench"
    )
    with Publisher(url=amqp_url, topology=topology) as publisher:
        publisher.publish(request)
    return str(request.request_id)


def wait_run_done(database_url: str, run_id: str, workers: list[Child], timeout: float) -> str:
    """Poll the run's state every 0.1 s until it is done or failed; return it."""

    def alive() -> None:
        for w in workers:
            w.check_alive()

    with psycopg.connect(database_url, autocommit=True) as conn:

        def finished() -> str | None:
            row = conn.execute(RUN_STATE, [run_id]).fetchone()
            return row[0] if row and row[0] in ("done", "failed") else None

        return wait_until(
            finished, timeout=timeout, interval=0.1, what=f"bulk run {run_id}", alive=alive
        )


def run_summary(database_url: str, run_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        row = conn.execute(
            "SELECT state, matched, done, created, updated, unchanged, deactivated, missing,"
            " failed, error, EXTRACT(EPOCH FROM fanned_out_at - started_at)::float8 AS fan_out_s"
            " FROM sync_run_summary WHERE run_id = %s",
            [run_id],
        ).fetchone()
    assert row is not None
    return dict(row)


def classify_requests(log: list[tuple[str, str]]) -> dict[str, int]:
    """Requests the fake Jira served, by kind."""
    kinds: Counter[str] = Counter()
    for _, target in log:
        path = target.split("?", 1)[0]
        if path.endswith("/user/list"):
            kinds["list_pages"] += 1
        elif path.endswith("/user"):
            kinds["user_fetches"] += 1
        else:
            kinds["other"] += 1
    return {"total": len(log), **{k: kinds[k] for k in ("list_pages", "user_fetches", "other")}}


@dataclass
class TimedRun:
    run_id: str
    elapsed_s: float
    logins: LoginStats
    jira_requests: dict[str, int]
    cpu: CpuMeter
    statements: list[dict[str, Any]]
    backlog: Backlog


@dataclass
class Backlog:
    """The most messages the user-sync queue held ready, and the most memory the RabbitMQ
    node had (``VmRSS``), sampled every 0.5 s while the run went on."""

    most_waiting: int = 0
    broker_rss_mib: float = 0.0
    broker_rss_before_mib: float = 0.0


class BacklogWatch:
    def __init__(self, amqp_url: str, queue: str, broker_pid: int | None) -> None:
        self._url, self._queue, self._pid = amqp_url, queue, broker_pid
        self._stop = threading.Event()
        self.found = Backlog(broker_rss_before_mib=self._rss())
        self._thread = threading.Thread(target=self._watch, name="backlog", daemon=True)

    def _rss(self) -> float:
        return rss_mib(self._pid) if self._pid else 0.0

    def _watch(self) -> None:
        with pika.BlockingConnection(pika.URLParameters(self._url)) as conn:
            channel = conn.channel()
            while not self._stop.wait(0.5):
                ok = channel.queue_declare(self._queue, passive=True)
                self.found.most_waiting = max(self.found.most_waiting, ok.method.message_count)
                self.found.broker_rss_mib = max(self.found.broker_rss_mib, self._rss())

    def __enter__(self) -> BacklogWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def measure_bulk(opts: Options, database_url: str, topology: Topology, log_dir: Path) -> BulkResult:
    """Set up the fake Jira, the schema and the workers; time one bulk run; stop them."""
    jira, jira_setup_s = start_fake_jira(opts.users)
    workers: list[Child] = []
    try:
        started = time.perf_counter()
        migrate(database_url)
        migrate_s = time.perf_counter() - started
        started = time.perf_counter()
        workers = start_workers(
            opts.workers,
            worker_env(opts, topology, database_url, jira.url),
            log_dir,
            metrics=opts.metrics,
        )
        workers_ready_s = time.perf_counter() - started
        prober = LoginProber(
            jira=jira,
            users=jira.users(),
            amqp_url=opts.amqp_url,
            topology=topology,
            database_url=database_url,
            rate=opts.logins_per_s,
        )
        idle_logins = prober.measure_idle(IDLE_LOGINS if opts.logins_per_s > 0 else 0)
        checkpoint(database_url)
        timed = time_bulk_run(opts, jira, workers, prober, database_url, topology)
        rss = [w.peak_rss_mib() for w in workers]
        codes = [w.stop() for w in workers]
        summary = run_summary(database_url, timed.run_id)
    finally:
        for w in workers:
            w.kill()
        jira.stop()
    return BulkResult(
        elapsed_s=timed.elapsed_s,
        fan_out_s=summary.pop("fan_out_s"),
        jira_setup_s=jira_setup_s,
        migrate_s=migrate_s,
        workers_ready_s=workers_ready_s,
        summary=summary | {"run_id": timed.run_id},
        jira_requests=timed.jira_requests,
        logins=timed.logins,
        idle_logins=idle_logins,
        worker_peak_rss_mib=rss,
        worker_exit_codes=codes,
        cpu=timed.cpu,
        statements=timed.statements,
        login_targets={x.jira_id: x.marker for x in idle_logins.logins + timed.logins.logins},
        backlog=timed.backlog,
    )


def time_bulk_run(
    opts: Options,
    jira: FakeJira,
    workers: list[Child],
    prober: LoginProber,
    database_url: str,
    topology: Topology,
) -> TimedRun:
    """Publish the request and wait until done, with logins (and CPU meters) running."""
    requests_before = len(jira.request_log)
    statements = Statements(database_url, opts.statements)
    statements.reset()
    recorder = start_profiling(opts.py_spy, workers, idle=not opts.py_spy_on_cpu)
    servers = Servers.find(database_url, opts.amqp_url)
    cpu = CpuMeter({"workers": [w.pid for w in workers]}, servers)
    watch = BacklogWatch(opts.amqp_url, topology.user_sync_queue, servers.rabbitmq)
    prober.start()
    cpu.start()
    started = time.perf_counter()
    try:
        with watch:
            run_id = request_bulk(opts.amqp_url, topology)
            wait_run_done(database_url, run_id, workers, timeout=max(300.0, opts.users / 100))
            elapsed = time.perf_counter() - started
            cpu.stop()
    finally:
        if recorder is not None:
            recorder.stop()
        logins = prober.stop()
    requests = classify_requests(jira.request_log[requests_before:])
    return TimedRun(run_id, elapsed, logins, requests, cpu, statements.read(), watch.found)


def start_profiling(out_dir: Path | None, workers: list[Child], *, idle: bool) -> Recorder | None:
    """With ``--py-spy DIR``: record the workers, and this process (the fake Jira)."""
    if out_dir is None:
        return None
    recorder = Recorder(out_dir, idle=idle)
    recorder.start({w.name: w.pid for w in workers} | {"bench": os.getpid()})
    return recorder


# -- checks -----------------------------------------------------------------------------------


def verify(database_url: str, users: int, bulk: BulkResult) -> list[Check]:
    s, targets = bulk.summary, bulk.login_targets
    with psycopg.connect(database_url) as conn:
        assets, distinct = _one(conn, "SELECT count(*), count(DISTINCT jira_id) FROM user_assets")
        not_created: dict[str, str] = dict(
            conn.execute(
                "SELECT jira_id, outcome FROM sync_run_users"
                " WHERE run_id = %s AND outcome IS DISTINCT FROM 'created'",
                [s["run_id"]],
            ).fetchall()
        )
        names: dict[str, str] = dict(
            conn.execute(
                "SELECT jira_id, fields->>'Full name' FROM user_assets WHERE jira_id = ANY(%s)",
                [list(targets)],
            ).fetchall()
        )
    by_login = set(not_created) & set(targets)
    lost = sorted(j for j, marker in targets.items() if names.get(j) != marker)
    return [
        Check("run done", s["state"] == "done", f"state {s['state']}"),
        Check(
            "matched == done == N",
            s["matched"] == s["done"] == users,
            f"matched {s['matched']}, done {s['done']}",
        ),
        Check("failed == 0", s["failed"] == 0, f"failed {s['failed']}"),
        Check(
            "created == N, except users a login created first",
            s["created"] + len(by_login) == users and set(not_created) <= set(targets),
            f"created {s['created']}; {len(not_created)} not created by the run"
            f" ({dict(Counter(not_created.values()))}), {len(by_login)} of them login targets",
        ),
        Check(
            "N user assets, one per user",
            assets == distinct == users,
            f"{assets} assets, {distinct} distinct users",
        ),
        Check(
            "every login won over the bulk snapshots",
            not lost,
            f"{len(targets) - len(lost)}/{len(targets)} show their marker"
            + (f"; lost: {lost[:5]}" if lost else ""),
        ),
        Check(
            "workers exited 0 on SIGTERM",
            not any(bulk.worker_exit_codes),
            f"exit codes {bulk.worker_exit_codes}",
        ),
    ]


def _one(conn: psycopg.Connection[Any], query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return tuple(row)


# -- the whole run ----------------------------------------------------------------------------


@contextlib.contextmanager
def log_directory(keep: bool) -> Iterator[Path]:
    """A directory for child logs; removed afterwards unless ``keep`` or on failure."""
    path = Path(tempfile.mkdtemp(prefix="assetsync-bench-"))
    try:
        yield path
    except BaseException:
        print(f"logs kept in {path}", file=sys.stderr)
        raise
    if not keep:
        shutil.rmtree(path, ignore_errors=True)


def run(opts: Options) -> dict[str, Any]:
    suffix = unique_suffix()
    topology = Topology(prefix=f"assetsync-bench-{suffix}")
    raw_queues = {sink: f"{topology.prefix}.raw-{sink}" for sink in RAW_SINKS}
    started = time.perf_counter()
    with (
        log_directory(opts.keep_logs) as log_dir,
        fresh_database(opts.admin_database_url, suffix) as database_url,
    ):
        try:
            raws: dict[str, raw_ceiling.RawResult] = {}
            loads: dict[str, float] = {}
            for sink, queue in raw_queues.items():
                loads[sink] = _loadavg()
                raws[sink] = raw_ceiling.measure(
                    amqp_url=opts.amqp_url,
                    database_url=database_url,
                    queue=queue,
                    messages=opts.users,
                    workers=opts.workers,
                    batch_size=opts.batch_size,
                    log_dir=log_dir,
                    sink=sink,
                    statements_top=opts.statements,
                )
            loads["bulk"] = _loadavg()
            bulk = measure_bulk(opts, database_url, topology, log_dir)
            checks = verify(database_url, opts.users, bulk)
        finally:
            delete_broker_objects(
                opts.amqp_url,
                [*raw_queues.values(), *(q.name for q in topology.queues())],
                [e.name for e in topology.exchanges()],
            )
    report = build_report(opts, raws, bulk, checks, time.perf_counter() - started, loads)
    if opts.keep_logs:
        report["log_dir"] = str(log_dir)
    return report


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def build_report(
    opts: Options,
    raws: dict[str, raw_ceiling.RawResult],
    bulk: BulkResult,
    checks: list[Check],
    total_s: float,
    loadavg: dict[str, float],
) -> dict[str, Any]:
    raw, bare = raws["store"], raws["table"]
    users_per_s = opts.users / bulk.elapsed_s
    ratio = users_per_s / raw.msgs_per_s
    return {
        "users": opts.users,
        "workers": opts.workers,
        "metrics": opts.metrics,
        "page_size": opts.page_size,
        "batch_size": opts.batch_size,
        "logins_per_s": opts.logins_per_s,
        "raw_ceiling_msgs_per_s": round(raw.msgs_per_s),
        "bare_ceiling_msgs_per_s": round(bare.msgs_per_s),
        "bulk_users_per_s": round(users_per_s),
        "bulk_vs_raw_pct": round(100 * ratio, 1),
        "bulk_vs_bare_pct": round(100 * users_per_s / bare.msgs_per_s, 1),
        "store_vs_bare_pct": round(100 * raw.msgs_per_s / bare.msgs_per_s, 1),
        "goals_met": {
            "bulk_vs_store": ratio >= GOAL_BULK_VS_STORE,
            "store_vs_bare": raw.msgs_per_s / bare.msgs_per_s >= GOAL_STORE_VS_BARE,
            "users_per_s": users_per_s >= GOAL_USERS_PER_S,
        },
        "jira_requests_per_user": round(bulk.jira_requests["total"] / opts.users, 5),
        "jira_requests": bulk.jira_requests,
        "login_latency_ms": bulk.logins.summary_ms(),
        "login_latency_idle_ms": bulk.idle_logins.summary_ms(),
        "worker_peak_rss_mib": [round(x, 1) for x in bulk.worker_peak_rss_mib],
        "queue_ahead": opts.queue_ahead,
        "backlog": asdict(bulk.backlog) if bulk.backlog else None,
        "raw_consumer_peak_rss_mib": [round(x, 1) for x in raw.consumer_peak_rss_mib],
        "run": {k: v for k, v in bulk.summary.items() if k != "error" or v},
        "durations_s": {
            "raw_prepublish": round(raw.publish_s, 2),
            "raw_consume": round(raw.consume_s, 2),
            "bare_consume": round(bare.consume_s, 2),
            "jira_setup": round(bulk.jira_setup_s, 2),
            "migrate": round(bulk.migrate_s, 2),
            "workers_ready": round(bulk.workers_ready_s, 2),
            "bulk_fan_out": None if bulk.fan_out_s is None else round(bulk.fan_out_s, 2),
            "bulk_total": round(bulk.elapsed_s, 2),
            "bench_total": round(total_s, 1),
        },
        "raw_prepublish_msgs_per_s": round(raw.publish_per_s),
        "cpu_ms_per_msg": {
            "bare": cpu_per_message(bare.cpu, opts.users),
            "raw": cpu_per_message(raw.cpu, opts.users),
            "bulk": cpu_per_message(bulk.cpu, opts.users),
        },
        "machine_busy_pct": {
            "bare": busy_pct(bare.cpu),
            "raw": busy_pct(raw.cpu),
            "bulk": busy_pct(bulk.cpu),
        },
        "loadavg_1m_before": {
            "bare": loadavg["table"],
            "raw": loadavg["store"],
            "bulk": loadavg["bulk"],
        },
        "statements": {
            "bare": bare.statements,
            "raw": raw.statements,
            "bulk": bulk.statements,
        },
        "checks": [asdict(c) for c in checks],
        "ok": all(c.ok for c in checks),
    }


def cpu_per_message(cpu: CpuMeter, messages: int) -> dict[str, float]:
    """CPU milliseconds per message (per user), by process group."""
    return {k: round(1000 * v / messages, 3) for k, v in cpu.used.items()}


def busy_pct(cpu: CpuMeter) -> float:
    """How busy all cores were, on average, while the phase ran."""
    cores = os.cpu_count() or 1
    return round(100 * cpu.used["machine"] / (cpu.wall_s * cores), 1)


def format_report(r: dict[str, Any]) -> str:
    d, req = r["durations_s"], r["jira_requests"]
    lat, idle = r["login_latency_ms"], r["login_latency_idle_ms"]
    met = {k: "meets" if v else "BELOW" for k, v in r["goals_met"].items()}
    fan_out = "?" if d["bulk_fan_out"] is None else f"{d['bulk_fan_out']:.2f}"
    lines = [
        f"assetsync bulk-sync bench: {r['users']:,} users, {r['workers']} workers,"
        f" page {r['page_size']}, batch {r['batch_size']}, {r['logins_per_s']:g} logins/s,"
        f" metrics {'on' if r.get('metrics') else 'off'}",
        f"  raw ceiling      {r['raw_ceiling_msgs_per_s']:>8,} msgs/s   ({d['raw_consume']:.2f} s;"
        " consume -> the asset store's batched upsert -> ack)",
        f"  bare ceiling     {r['bare_ceiling_msgs_per_s']:>8,} msgs/s   ({d['bare_consume']:.2f} s;"
        " the same into one (id, jsonb) row per message)",
        f"  bulk sync        {r['bulk_users_per_s']:>8,} users/s  ({d['bulk_total']:.2f} s;"
        f" fan-out done after {fan_out} s; {met['users_per_s']} the goal of"
        f" {GOAL_USERS_PER_S:,})",
        f"  bulk / raw       {r['bulk_vs_raw_pct']:>8.1f} %        ({met['bulk_vs_store']} the goal"
        f" of {GOAL_BULK_VS_STORE:.0%})",
        f"  raw / bare       {r['store_vs_bare_pct']:>8.1f} %        ({met['store_vs_bare']} the goal"
        f" of {GOAL_STORE_VS_BARE:.0%})",
        f"  bulk / bare      {r['bulk_vs_bare_pct']:>8.1f} %",
        f"  Jira requests    {r['jira_requests_per_user']:>8.4f} /user   ({req['total']:,}:"
        f" {req['list_pages']} list pages, {req['user_fetches']} user fetches,"
        f" {req['other']} other)",
        "  run counts       "
        + ", ".join(f"{k} {r['run'][k]:,}" for k in RUN_COUNTS)
        + f"  (missing {r['run']['missing']})",
        f"  login latency    p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}"
        f"  ({lat['count']} ok, {lat['failed']} failed; during the run)",
        f"                   p50 {_ms(idle['p50'])}, p99 {_ms(idle['p99'])},"
        f" max {_ms(idle['max'])}  ({idle['count']} ok, {idle['failed']} failed; idle, before it)",
        "  worker peak RSS  "
        + ", ".join(f"{x:.1f}" for x in r["worker_peak_rss_mib"])
        + " MiB  (raw consumers: "
        + ", ".join(f"{x:.1f}" for x in r["raw_consumer_peak_rss_mib"])
        + " MiB)",
        *(
            [
                f"  backlog          at most {b['most_waiting']:,} messages waited in the"
                f" user-sync queue (bound {r['queue_ahead'] if r['queue_ahead'] is not None else 'default'});"
                f" RabbitMQ RSS at most {b['broker_rss_mib']:.0f} MiB"
                f" ({b['broker_rss_before_mib']:.0f} before the run)"
            ]
            if (b := r.get("backlog"))
            else []
        ),
        f"  durations        jira setup {d['jira_setup']:.2f} s, migrate {d['migrate']:.2f} s,"
        f" workers ready {d['workers_ready']:.2f} s, bench total {d['bench_total']:.1f} s",
        *(
            f"  CPU ms/msg {phase:<5} "
            + ", ".join(f"{k} {v:.3f}" for k, v in r["cpu_ms_per_msg"][phase].items())
            + f"  (cores {r['machine_busy_pct'][phase]:.0f}% busy)"
            for phase in ("bare", "raw", "bulk")
        ),
        "  load avg (1 min) before "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["loadavg_1m_before"].items()),
        *(
            line
            for phase in ("bare", "raw", "bulk")
            for line in format_statements(phase, r.get("statements", {}).get(phase, []))
        ),
        "  checks",
    ]
    lines += [
        f"    {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}" for c in r["checks"]
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bulk_sync",
        description="Bulk sync of N users end to end, against this machine's raw ceiling.",
    )
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--logins-per-s", type=float, default=5.0)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_ADMIN_DATABASE_URL,
        help="a maintenance database; the bench creates and drops its own next to it",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the child processes' logs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--metrics", action="store_true", help="workers serve metrics and probes (each a port)"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record the workers with py-spy during the bulk run (see bench.worker_profile)",
    )
    parser.add_argument(
        "--py-spy-on-cpu",
        action="store_true",
        help="with --py-spy: record only samples on CPU (not waits)",
    )
    parser.add_argument(
        "--queue-ahead",
        type=int,
        metavar="N",
        help="the workers' ASSETSYNC_BULK_QUEUE_AHEAD (0: no bound; default: theirs)",
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="the top N statements of each phase (needs pg_stat_statements; see bench.statements)",
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.workers < 1:
        parser.error("--users and --workers must be at least 1")
    return Options(
        users=args.users,
        workers=args.workers,
        page_size=args.page_size,
        batch_size=args.batch_size,
        logins_per_s=args.logins_per_s,
        amqp_url=args.amqp_url,
        admin_database_url=args.database_url,
        keep_logs=args.keep_logs,
        as_json=args.json,
        py_spy=args.py_spy,
        metrics=args.metrics,
        statements=args.statements,
        py_spy_on_cpu=args.py_spy_on_cpu,
        queue_ahead=args.queue_ahead,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    report = run(opts)
    print(json.dumps(report) if opts.as_json else format_report(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
