"""Login latency while a bulk run is in progress.

Why: a bulk run fills the user-sync queue and keeps both workers' main loops busy with
batches; logins have a queue of their own, and this measures what that is worth. It also
checks that a login always wins over the bulk run's older snapshots of the same user.

What is measured, per login: a user not probed before is picked at random, their display
name in the fake Jira is changed to a unique marker, a ``user-logged-in`` is published
(publisher confirms), and ``user_assets`` is polled (every 5 ms, on a connection of the
probe's own) until that user's "Full name" is the marker. Latency = from just before the
publish until the poll sees the marker; a login not visible within 10 s counts as
failed. Probes start at a fixed rate from a scheduler thread and run in a small thread
pool, so slow ones overlap instead of delaying the schedule. Before the run,
``measure_idle`` makes ten such logins one after the other: the latency to compare with.

Renaming goes around ``FakeJira.update_user`` when it can (see ``rename``): that call
makes the fake re-sort its whole directory on the next page request, about 150 ms at
100,000 users under the fake's lock, in this process; with logins every 0.2 s that is
nearly every page of the bulk run, and the run measured the fake instead of the worker.

The poll finds the row by ``asset_id``, looked up through the unique user value with its
field id, rather than by ``WHERE jira_id = ...``: the view's ``jira_id`` filter cannot use
the leading column (``field_id``) of the user-value indexes, so it scans the whole index
(about 2 ms per query at 100,000 assets, against 0.2 ms this way). Polled every 5 ms by
several probes at once, that would load PostgreSQL enough to slow the run being measured.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.infra import percentile
from demo.fake_jira import FakeJira
from producers.publisher import Publisher, publish_user_logged_in
from schemas.topology import Topology

POLL_INTERVAL = 0.005
VISIBLE_WITHIN = 10.0
PROBE_THREADS = 8
# The default scheme (settings ASSETSYNC_ASSET_TYPE, ASSETSYNC_USER_FIELD).
USER_FIELD_ID = (
    "SELECT f.id FROM asset_fields f JOIN asset_types t ON t.id = f.asset_type_id"
    " WHERE t.name = 'Employee' AND f.name = 'User'"
)
FULL_NAME = (
    "SELECT fields->>'Full name' FROM user_assets WHERE asset_id = ("
    "SELECT asset_id FROM asset_values WHERE field_id = %s AND is_unique AND value_user = %s)"
)


@dataclass(frozen=True)
class Login:
    username: str
    jira_id: str
    marker: str
    latency_s: float | None  # None: not visible within VISIBLE_WITHIN


@dataclass(frozen=True)
class LoginStats:
    logins: list[Login]

    @property
    def ok(self) -> list[float]:
        return [x.latency_s for x in self.logins if x.latency_s is not None]

    @property
    def failed(self) -> int:
        return sum(1 for x in self.logins if x.latency_s is None)

    def summary_ms(self) -> dict[str, Any]:
        ok = self.ok
        if not ok:
            return {"count": 0, "failed": self.failed, "p50": None, "p99": None, "max": None}
        return {
            "count": len(ok),
            "failed": self.failed,
            "p50": round(percentile(ok, 50) * 1000, 1),
            "p99": round(percentile(ok, 99) * 1000, 1),
            "max": round(max(ok) * 1000, 1),
        }


def rename(jira: FakeJira, jira_id: str, display_name: str) -> None:
    """Give a user a new display name in the fake Jira, as Jira would serve it next."""
    jira.update_user(jira_id, display_name=display_name)


class LoginProber:
    """Publishes logins at ``rate`` per second between ``start`` and ``stop``.

    :param users: the fake Jira's user JSON to pick from (``FakeJira.users()``).
    """

    def __init__(
        self,
        *,
        jira: FakeJira,
        users: list[dict[str, Any]],
        amqp_url: str,
        topology: Topology,
        database_url: str,
        rate: float,
        seed: int = 7,
    ) -> None:
        self.jira = jira
        self.database_url = database_url
        self.rate = rate
        with psycopg.connect(database_url) as conn:
            row = conn.execute(USER_FIELD_ID).fetchone()
        assert row is not None, "no user field 'User' of asset type 'Employee'"
        self._user_field_id: int = row[0]
        self._candidates = [(u["name"], u["key"]) for u in users]
        random.Random(seed).shuffle(self._candidates)
        self._publisher = Publisher(url=amqp_url, topology=topology)
        self._publish_lock = threading.Lock()  # pika is not thread-safe
        self._local = threading.local()
        self._connections: list[psycopg.Connection[Any]] = []
        self._connections_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="login-probe")
        self._futures: list[Future[Login]] = []
        self._stop = threading.Event()
        self._serial = itertools.count()
        self._scheduler = threading.Thread(target=self._schedule, name="login-scheduler")

    def measure_idle(self, count: int) -> LoginStats:
        """``count`` logins one after the other before the run: the baseline latency."""
        logins = []
        for _ in range(min(count, len(self._candidates))):
            username, jira_id = self._candidates.pop()
            logins.append(self._probe(username, jira_id))
        return LoginStats(logins)

    def start(self) -> None:
        """Start logins at ``rate`` per second (in the background) until ``stop``."""
        if self.rate > 0:
            self._scheduler.start()

    def stop(self) -> LoginStats:
        """Stop starting logins; wait for those in flight; close everything."""
        self._stop.set()
        if self._scheduler.is_alive():
            self._scheduler.join()
        logins = [f.result() for f in self._futures]
        self._pool.shutdown()
        self._publisher.close()
        for conn in self._connections:
            conn.close()
        return LoginStats(logins)

    def _schedule(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        for username, jira_id in list(self._candidates):
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return
            self._futures.append(self._pool.submit(self._probe, username, jira_id))
            next_at += interval

    def _probe(self, username: str, jira_id: str) -> Login:
        marker = f"Bench Login {next(self._serial):05d} {uuid.uuid4().hex[:8]}"
        rename(self.jira, jira_id, marker)
        started = time.perf_counter()
        with self._publish_lock:
            publish_user_logged_in(self._publisher, username=username)
        latency = self._wait_visible(jira_id, marker, started)
        return Login(username, jira_id, marker, latency)

    def _wait_visible(self, jira_id: str, marker: str, started: float) -> float | None:
        conn = self._connection()
        deadline = started + VISIBLE_WITHIN
        while True:
            row = conn.execute(FULL_NAME, [self._user_field_id, jira_id]).fetchone()
            now = time.perf_counter()
            if row is not None and row[0] == marker:
                return now - started
            if now > deadline:
                return None
            time.sleep(POLL_INTERVAL)

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.database_url, autocommit=True)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn
