# kombu ships no type information (as in pyproject.toml for worker.*):
# mypy: disallow-untyped-calls=False
"""The raw ceiling: how fast this machine can consume -> batch-upsert -> ack.

Why: the bulk sync's users/s means little on its own; this says how close it gets to
what RabbitMQ and PostgreSQL allow here with the same delivery guarantees (persistent
messages in a quorum queue, ack only after the transaction commits), minus Jira and
mapping.

Two sinks, i.e. two things the batched upsert writes:

- ``store``: the asset store itself. Each message carries one user asset already mapped
  (Jira id, folder, field values, snapshot time); a batch goes through the worker's own
  ``Store.apply_plans`` (look up, lock, create, compare, write) in one transaction.
  This is the ceiling of the job: everything the bulk sync does on top of it (scanning
  Jira, publishing one message per user, mapping, run tracking) is its overhead.
- ``table``: one row ``(id, body jsonb)`` per message, upserted with one ``executemany
  ... ON CONFLICT (id) DO UPDATE``: what the broker and the database allow with the
  cheapest possible write, for comparison.

What is measured: N messages (~400-byte JSON, persistent) are published first to a
quorum queue of their own (one AMQP transaction per 500, not timed). Then ``--workers``
consumer processes (this module's ``consume`` command: kombu, heartbeat on, prefetch
2 x batch, frames read by the workers' own reader, ``worker.frame_reader``) are started and, once all are subscribed-ready, told to go at the same time.
Each takes deliveries into a batch of ``--batch-size`` (or fewer after 0.2 s, as the
worker does), upserts it in one transaction and after the commit acks the batch with
one ``multiple`` ack. The clock runs from "go" until the commit that made the last of
the N rows visible: every 0.1 s the driver asks the queue how many messages are still
ready and, once none are, counts the rows to know when it is over,
then takes the exact end from the consumers' own record of their last commit (a
1-second phase must not be blurred by the polling interval), and checks the queue is
empty.

Run it on its own: ``python -m bench.raw_ceiling --messages 20000 [--sink store]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import string
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import pika
import psycopg
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Consumer

from bench.infra import (
    DEFAULT_ADMIN_DATABASE_URL,
    DEFAULT_AMQP_URL,
    Child,
    CpuMeter,
    Servers,
    checkpoint,
    delete_broker_objects,
    fresh_database,
    queue_depth,
    unique_suffix,
    wait_until,
)
from bench.statements import Statements
from worker import frame_reader
from worker.mapping import AssetPlan
from worker.settings import DEFAULT_FIELD_MAP, JIRA_FIELDS
from worker.store import Folders, Store, apply_plans, load_scheme
from worker.store.migrate import migrate

TABLE = "raw_ceiling"
BODY_BYTES = 400
PUBLISH_COMMIT_EVERY = 500
MAX_BATCH_AGE = 0.2  # seconds a partial batch waits for more, as in worker.consumer
HEARTBEAT = 30
UPSERT = (
    f"INSERT INTO {TABLE} (id, body) VALUES (%s, %s::jsonb)"
    " ON CONFLICT (id) DO UPDATE SET body = excluded.body"
)


@dataclass(frozen=True)
class RawResult:
    sink: str
    messages: int
    workers: int
    batch_size: int
    publish_s: float
    consume_s: float
    consumer_peak_rss_mib: list[float]
    cpu: CpuMeter
    statements: list[dict[str, Any]]

    @property
    def publish_per_s(self) -> float:
        return self.messages / self.publish_s

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.consume_s


# -- the driver -------------------------------------------------------------------------------


def measure(
    *,
    amqp_url: str,
    database_url: str,
    queue: str,
    messages: int,
    workers: int,
    batch_size: int,
    log_dir: Path,
    sink: str = "table",
    servers: Servers | None = None,
    statements_top: int = 0,
) -> RawResult:
    """Pre-publish, then time ``workers`` consumer processes through all messages.

    Leaves nothing behind: the queue is deleted and the sink's rows removed.
    """
    target = SINKS[sink]
    target.prepare(database_url)
    servers = servers or Servers.find(database_url, amqp_url)
    consumers: list[Child] = []
    try:
        publish_s = prepublish(amqp_url, queue, messages, target)
        checkpoint(database_url)
        statements = Statements(database_url, statements_top)
        statements.reset()
        consumers = [
            start_consumer(
                amqp_url, database_url, queue, batch_size, sink, log_dir / f"raw-{sink}-{i}.log"
            )
            for i in range(workers)
        ]
        for c in consumers:
            c.wait_for_log("ready", timeout=30)
        cpu = CpuMeter({"consumers": [c.pid for c in consumers]}, servers)
        go_at = time_consumption(consumers, cpu, amqp_url, database_url, queue, messages, target)
        top = statements.read()
        rss = [c.peak_rss_mib() for c in consumers]
        consume_s = stop_consumers(consumers, messages) - go_at
    finally:
        for c in consumers:
            c.kill()
        delete_broker_objects(amqp_url, [queue], [])
        target.clean(database_url)
    return RawResult(sink, messages, workers, batch_size, publish_s, consume_s, rss, cpu, top)


class Sink(Protocol):
    count_rows: str  # how many messages' rows are there

    def prepare(self, database_url: str) -> None: ...
    def clean(self, database_url: str) -> None: ...
    def body_for(self, i: int) -> bytes: ...
    def writer(self, database_url: str) -> TableWriter | StoreWriter: ...


class TableSink:
    """One ``(id, body jsonb)`` row per message: the cheapest write there is."""

    count_rows = f"SELECT count(*) FROM {TABLE}"

    def prepare(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, body jsonb NOT NULL)")

    def clean(self, database_url: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def body_for(self, i: int) -> bytes:
        return table_body(i)

    def writer(self, database_url: str) -> TableWriter:
        return TableWriter(database_url)


class StoreSink:
    """One user asset per message, already mapped, written by the worker's store."""

    count_rows = "SELECT count(*) FROM assets"

    def prepare(self, database_url: str) -> None:
        migrate(database_url)

    def clean(self, database_url: str) -> None:
        # The schema stays (a bulk phase may follow in the same database); its rows go.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("TRUNCATE asset_values, assets, folders RESTART IDENTITY")

    def body_for(self, i: int) -> bytes:
        return store_body(i)

    def writer(self, database_url: str) -> StoreWriter:
        return StoreWriter(database_url)


SINKS: dict[str, Sink] = {"table": TableSink(), "store": StoreSink()}


def store_body(i: int) -> bytes:
    """A ~400-byte JSON body: one user's asset as the mapping would plan it."""
    doc: dict[str, Any] = {
        "type": "raw-asset",
        "jira_id": f"JIRAUSER{10000 + i}",
        "folder": ["Employees", string.ascii_uppercase[i % 26]],
        "seen_at": "2026-11-25T09:30:00.000000+00:00",
        "values": {
            "User": f"JIRAUSER{10000 + i}",
            "Username": f"user{i}",
            "Full name": f"Sample User {i}",
            "E-mail": f"sample.user{i}@example.com",
            "Active": i % 10 != 0,
        },
        "pad": "",
    }
    return _padded(doc)


def _padded(doc: dict[str, Any]) -> bytes:
    size = len(json.dumps(doc, separators=(",", ":")))
    doc["pad"] = "x" * max(0, BODY_BYTES - size)
    return json.dumps(doc, separators=(",", ":")).encode()


def table_body(i: int) -> bytes:
    """A ~400-byte JSON body shaped like a user snapshot, with the row id in ``id``."""
    doc: dict[str, Any] = {
        "type": "raw",
        "id": i,
        "fetched_at": "2026-11-25T09:30:00.000000Z",
        "user": {
            "key": f"JIRAUSER{10000 + i}",
            "name": f"user{i}",
            "displayName": f"Sample User {i}",
            "emailAddress": f"sample.user{i}@example.com",
            "active": i % 10 != 0,
            "timeZone": "Europe/Berlin",
            "locale": "en_US",
        },
        "pad": "",
    }
    return _padded(doc)


def prepublish(amqp_url: str, queue: str, messages: int, sink: Sink) -> float:
    """Declare the quorum queue and fill it, one AMQP transaction per 500; seconds taken."""
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.tx_select()
        started = time.perf_counter()
        for i in range(messages):
            channel.basic_publish("", queue, sink.body_for(i), props)
            if (i + 1) % PUBLISH_COMMIT_EVERY == 0:
                channel.tx_commit()
        channel.tx_commit()
        return time.perf_counter() - started


def start_consumer(
    amqp_url: str, database_url: str, queue: str, batch_size: int, sink: str, log_path: Path
) -> Child:
    args = ["consume", "--amqp-url", amqp_url, "--database-url", database_url]
    args += ["--queue", queue, "--batch-size", str(batch_size), "--sink", sink]
    return Child(
        name=log_path.stem,
        module=["bench.raw_ceiling", *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        log_path=log_path,
        with_stdin=True,
    ).start()


def time_consumption(
    consumers: list[Child],
    cpu: CpuMeter,
    amqp_url: str,
    database_url: str,
    queue: str,
    messages: int,
    sink: Sink,
) -> float:
    """Say go to every consumer, wait until all rows are there and the queue is empty;
    return when go was said (``time.time()``). ``cpu`` meters that stretch."""

    def alive() -> None:
        for c in consumers:
            c.check_alive()

    with (
        psycopg.connect(database_url, autocommit=True) as conn,
        pika.BlockingConnection(pika.URLParameters(amqp_url)) as broker,
    ):
        channel = broker.channel()

        def all_rows() -> bool:
            # Rows are counted only once the queue has handed out every message: a
            # count(*) reads the whole table, which at a million rows took PostgreSQL
            # 140 ms a poll, more than half of its CPU in the phase it was timing.
            ready = channel.queue_declare(queue, passive=True).method.message_count
            if ready:
                return False
            row = conn.execute(sink.count_rows).fetchone()
            return row is not None and row[0] >= messages

        cpu.start()
        go_at = time.time()
        for c in consumers:
            c.send("go")
        wait_until(
            all_rows,
            timeout=max(120.0, messages / 200),
            interval=0.1,
            what=f"{messages} rows",
            alive=alive,
        )
        cpu.stop()
    depth = queue_depth(amqp_url, queue)
    if depth:
        raise RuntimeError(f"all rows present but {depth} messages still ready in {queue}")
    return go_at


def stop_consumers(consumers: list[Child], messages: int) -> float:
    """SIGTERM each; check they exited 0 and acked every message between them.

    :returns: when the last commit happened (``time.time()``).
    """
    codes = [c.stop() for c in consumers]
    if any(codes):
        raise RuntimeError(f"raw consumers exited with {codes}")
    stats = [_stats(c) for c in consumers]
    acked = sum(int(s["acked"]) for s in stats)
    if acked < messages:
        raise RuntimeError(f"raw consumers acked {acked} of {messages} messages")
    return max(float(s["last_commit_at"]) for s in stats)


def _stats(consumer: Child) -> dict[str, float]:
    for line in reversed(consumer.log().splitlines()):
        if line.startswith("stats "):
            stats: dict[str, float] = json.loads(line.removeprefix("stats "))
            return stats
    raise RuntimeError(f"{consumer.name} printed no stats:\n{consumer.log()}")


# -- the consumer process ---------------------------------------------------------------------


class TableWriter:
    """Upserts a batch of bodies into the ``(id, body)`` table in one transaction."""

    def __init__(self, database_url: str) -> None:
        self.db = psycopg.connect(database_url)

    def __call__(self, bodies: list[bytes]) -> None:
        rows = [(json.loads(b)["id"], b.decode()) for b in bodies]
        with self.db.transaction(), self.db.cursor() as cur:
            cur.executemany(UPSERT, rows)

    def close(self) -> None:
        self.db.close()


class StoreWriter:
    """Writes a batch of planned assets through the worker's store in one transaction."""

    def __init__(self, database_url: str) -> None:
        self.store = Store(url=database_url, max_size=2)
        self.store.open()
        self.folders = Folders(self.store)
        with self.store.transaction() as conn:
            self.scheme = load_scheme(
                conn,
                asset_type="Employee",
                user_field="User",
                field_map=DEFAULT_FIELD_MAP,
                kinds=JIRA_FIELDS,
            )

    def __call__(self, bodies: list[bytes]) -> None:
        plans = [_plan(json.loads(b)) for b in bodies]
        with self.store.transaction() as conn:
            apply_plans(conn, self.scheme, plans, folders=self.folders)

    def close(self) -> None:
        self.store.close()


def _plan(doc: dict[str, Any]) -> AssetPlan:
    return AssetPlan(
        jira_id=doc["jira_id"],
        folder=tuple(doc["folder"]),
        values=doc["values"],
        seen_at=datetime.fromisoformat(doc["seen_at"]),
    )


class RawConsumer:
    """consume -> batched upsert -> ack(multiple) after commit, until SIGTERM."""

    def __init__(
        self, amqp_url: str, writer: TableWriter | StoreWriter, queue: str, batch_size: int
    ) -> None:
        self.amqp_url = amqp_url
        self.writer = writer
        self.queue = queue
        self.batch_size = batch_size
        self.stop = threading.Event()
        self.pending: list[Any] = []
        self.since = 0.0
        self.acked = 0
        self.batches = 0
        self.last_commit_at = 0.0

    def run(self) -> None:
        frame_reader.install_amqp()  # deliveries read as the workers read them
        with Connection(self.amqp_url, heartbeat=HEARTBEAT) as conn:
            conn.ensure_connection(max_retries=3)
            consumer = Consumer(
                conn.channel(),
                queues=[Queue(self.queue, no_declare=True)],
                on_message=self._on_message,
                prefetch_count=2 * self.batch_size,
                auto_declare=False,
                no_ack=False,
            )
            print("ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                return
            consumer.consume()
            self._loop(conn)
            consumer.cancel()
            self._flush()
        stats = {
            "acked": self.acked,
            "batches": self.batches,
            "last_commit_at": self.last_commit_at,
        }
        print("stats " + json.dumps(stats), flush=True)

    def _on_message(self, message: Any) -> None:
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append(message)

    def _loop(self, conn: Connection) -> None:
        while not self.stop.is_set():
            idle = False
            try:
                conn.drain_events(timeout=0.05 if self.pending else 1.0)
            except TimeoutError:
                idle = True
            if self.pending and (
                idle
                or len(self.pending) >= self.batch_size
                or time.monotonic() - self.since > MAX_BATCH_AGE
            ):
                self._flush()
            conn.heartbeat_check()

    def _flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        self.writer([m.body for m in batch])
        self.last_commit_at = time.time()
        batch[-1].ack(multiple=True)
        self.acked += len(batch)
        self.batches += 1


def consume_main(args: argparse.Namespace) -> int:
    writer = SINKS[args.sink].writer(args.database_url)
    consumer = RawConsumer(args.amqp_url, writer, args.queue, args.batch_size)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        consumer.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        consumer.run()
    finally:
        writer.close()
    return 0


# -- command line -----------------------------------------------------------------------------


def standalone_main(args: argparse.Namespace) -> int:
    """Measure the raw ceiling alone, in a database and queue of its own."""
    suffix = unique_suffix()
    with (
        fresh_database(args.database_url, suffix) as database_url,
        tempfile.TemporaryDirectory(prefix="assetsync-bench-") as logs,
    ):
        result = measure(
            amqp_url=args.amqp_url,
            database_url=database_url,
            queue=f"assetsync-bench-{suffix}.raw",
            messages=args.messages,
            workers=args.workers,
            batch_size=args.batch_size,
            log_dir=Path(logs),
            sink=args.sink,
        )
    print(
        f"raw ceiling ({result.sink}): {result.msgs_per_s:,.0f} msgs/s ({result.messages:,} messages,"
        f" {result.workers} consumers, batch {result.batch_size}, {result.consume_s:.2f} s;"
        f" pre-publish {result.publish_per_s:,.0f} msgs/s)"
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_ceiling", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    parser.set_defaults(command="measure")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--sink", choices=sorted(SINKS), default="store")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument(
        "--database-url", default=DEFAULT_ADMIN_DATABASE_URL, help="a maintenance database"
    )
    consume = sub.add_parser("consume", help="(internal) one consumer process")
    consume.add_argument("--amqp-url", required=True)
    consume.add_argument("--database-url", required=True)
    consume.add_argument("--queue", required=True)
    consume.add_argument("--batch-size", type=int, required=True)
    consume.add_argument("--sink", choices=sorted(SINKS), required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "consume":
        return consume_main(args)
    return standalone_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
