"""What the tests and the benchmarks drive the product with: worker processes, the
test's own queues on a real broker, database probes, and waiting for a condition."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pika
import psycopg
from psycopg.rows import dict_row

from producers.publisher import declare
from schemas.topology import Topology

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def user_assets(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM user_assets ORDER BY asset_id").fetchall()


def asset_of(database_url: str, jira_id: str) -> dict[str, Any] | None:
    rows = [a for a in user_assets(database_url) if a["jira_id"] == jira_id]
    assert len(rows) <= 1, f"{len(rows)} assets for {jira_id}"
    return rows[0] if rows else None


@dataclass
class Broker:
    """A pika connection for poking at the test's own queues."""

    url: str
    topology: Topology

    def publish_raw(
        self,
        body: bytes,
        *,
        routing_key: str,
        content_type: str | None = "application/json",
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
    ) -> None:
        """A plain basic_publish, as any AMQP client in any language would do it."""
        with pika.BlockingConnection(pika.URLParameters(self.url)) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                exchange=self.topology.exchange,
                routing_key=routing_key,
                body=body,
                properties=pika.BasicProperties(
                    content_type=content_type,
                    delivery_mode=2,
                    headers=headers,
                    message_id=message_id,
                ),
            )

    def declare(self) -> None:
        """Declare the topology as a producer does, before any worker has run."""
        with pika.BlockingConnection(pika.URLParameters(self.url)) as conn:
            declare(conn.channel(), self.topology)

    def drain(self, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
        """Take every message now in ``queue``: (body, headers)."""
        got = []
        with pika.BlockingConnection(pika.URLParameters(self.url)) as conn:
            channel = conn.channel()
            while True:
                method, props, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return got
                got.append((body, dict(props.headers or {})))

    def count(self, queue: str) -> int:
        with pika.BlockingConnection(pika.URLParameters(self.url)) as conn:
            return int(conn.channel().queue_declare(queue, passive=True).method.message_count)

    def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        return self.drain(self.topology.dead_queue)

    def delete_all(self) -> None:
        with pika.BlockingConnection(pika.URLParameters(self.url)) as conn:
            channel = conn.channel()
            for q in self.topology.queues():
                channel.queue_delete(q.name)
            for ex in self.topology.exchanges():
                channel.exchange_delete(ex.name)
            channel.exchange_delete(self.topology.legacy_retry_exchange)


@dataclass
class WorkerProcess:
    """``python -m worker`` in a subprocess, its log in a file."""

    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    module: str = "worker"  # what ``python -m`` runs (a launcher of the worker)
    cwd: Path = ROOT  # where it runs: the code found first (another version's tree)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, *, wait: bool = True) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            wait_for(
                lambda: "consuming" in self.log() or self.proc.poll() is not None,
                timeout=30,
                what="the worker to start consuming",
            )
            assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def worker_env(
    *,
    amqp_url: str,
    database_url: str,
    topology: Topology,
    jira_url: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        {
            "ASSETSYNC_AMQP_URL": amqp_url,
            "ASSETSYNC_AMQP_PREFIX": topology.prefix,
            "ASSETSYNC_RETRY_DELAYS": json.dumps(list(topology.retry_delays)),
            "ASSETSYNC_DATABASE_URL": database_url,
            "ASSETSYNC_JIRA_URL": jira_url,
            "ASSETSYNC_JIRA_USERNAME": "admin",
            "ASSETSYNC_JIRA_TOKEN": "secret",
            "ASSETSYNC_HEALTH_FILE": "",
            "ASSETSYNC_JIRA_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def request_bulk(
    broker: Broker,
    *,
    prefix: str | None = None,
    groups: tuple[str, ...] = (),
    dry_run: bool = False,
) -> str:
    """Publish a bulk-sync-requested as the admin script does; return the run id."""
    import uuid

    from producers.publisher import Publisher
    from schemas.messages import BulkSyncRequested, utc_now

    request = BulkSyncRequested(
        request_id=uuid.uuid4(),
        requested_at=utc_now(),
        requested_by="tests",
        username_prefix=prefix,
        groups=list(groups),
        dry_run=dry_run,
    )
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publisher.publish(request)
    return str(request.request_id)


def run_summary(database_url: str, run_id: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM sync_run_summary WHERE run_id = %s", [run_id]).fetchone()


def wait_run_finished(database_url: str, run_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run = run_summary(database_url, run_id)
        return run if run and run["state"] in ("done", "failed") else None

    return wait_for(finished, timeout=timeout, what=f"run {run_id} to finish")


def counts(run: dict[str, Any]) -> dict[str, int]:
    keys = ("matched", "created", "updated", "unchanged", "deactivated", "missing", "failed")
    return {k: run[k] for k in keys}


def wait_quiet(broker: Broker, queues: list[str], *, quiet: float, timeout: float = 60.0) -> None:
    """Wait until none of ``queues`` has held a message for ``quiet`` seconds in a row:
    counting before that would miss what a delay queue is still holding back."""
    deadline = time.monotonic() + timeout
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        if any(broker.count(q) for q in queues):
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        time.sleep(0.05)
    raise AssertionError(f"queues {queues} did not stay empty for {quiet}s")


def retry_queues(topology: Topology) -> list[str]:
    return [topology.retry_queue(d) for d in topology.retry_delays]


def signed(database_url: str, body: bytes) -> dict[str, str]:
    """The headers a worker would give ``body``: signed with the store's key in use."""
    from worker.signing import SIGNATURE_HEADER
    from worker.store.keys import load_ring

    with psycopg.connect(database_url) as conn:
        return {SIGNATURE_HEADER: load_ring(conn).sign(body)}


def login_body(**ident: str) -> bytes:
    """A ``user-logged-in`` body as a plain AMQP client would publish it."""
    return json.dumps(
        {
            "type": "user-logged-in",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            **ident,
        }
    ).encode()
