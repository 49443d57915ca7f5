"""A fault lab: a bulk run of thousands of users with logins, a fault injected while the
request fans out or while the per-user messages are processed, and what the user checks
afterwards. Used by the fault suite (``tests/integration/test_faults.py``, which asserts)
and by ``python -m bench.faults`` (which times the recovery).

Everything is real but Jira: PostgreSQL, and a RabbitMQ node of the lab's own that it may
stop and start (never the shared one). Workers reach both through TCP proxies, so that a
connection can be made to go silent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from demo.fake_jira import FakeJira
from lab.harness import (
    Broker,
    WorkerProcess,
    asset_of,
    login_body,
    request_bulk,
    retry_queues,
    run_summary,
    user_assets,
    wait_for,
    wait_quiet,
    worker_env,
)
from lab.proxy import Proxy
from schemas.topology import Topology
from worker.store.migrate import migrate

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
PHASES = ("fanning-out", "processing")
FAULTS = (
    "connections-closed",
    "database-connections-killed",
    "workers-killed",
    "broker-restarted",
    "broker-silent",
    "database-silent",
    "jira-storm",
    "jira-slow",
    "database-read-only",
)
# Faults that need servers a lab makes only when asked (``Lab(pair=...)``).
PAIR_FAULTS = ("switchover",)
USERS = 3000
LOGINS = 6  # users who log in before the fault, and as many during it...
LOGINS_DURING = {"database-read-only": 20, "switchover": 20}  # ...or this many
READ_ONLY_FOR = 10.0  # seconds the database refuses writes in "database-read-only"
# Groups are mapped: listing pages carry none, so every user costs a Jira request while
# the per-user messages are processed, as with a real directory that maps them. That
# makes the processing phase last long enough to be hit, and Jira faults reach it too.
FIELD_MAP = {"name": "Username", "displayName": "Full name", "active": "Active", "groups": "Groups"}
WORKER_ENV = {
    "ASSETSYNC_FIELD_MAP": json.dumps(FIELD_MAP),
    "ASSETSYNC_JIRA_PAGE_SIZE": "100",
    "ASSETSYNC_BATCH_SIZE": "10",
    "ASSETSYNC_HEARTBEAT": "2",  # a silent broker is noticed within ~2 heartbeats
    "ASSETSYNC_DATABASE_TIMEOUT": "3",  # a silent database, within 3 s per round trip
    "ASSETSYNC_JIRA_TIMEOUT": "1",
}
# Long enough in sum to outlast every fault here, short enough for a test.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


def own_rabbit_possible() -> str | None:
    """Why a RabbitMQ node of our own cannot be started here, or None if it can."""
    if os.geteuid() != 0:
        return "starting a RabbitMQ node needs root (to run it as user rabbitmq)"
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return "RabbitMQ's server is not installed here"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RabbitNode:
    """A RabbitMQ node of our own (``../shared/notes/operations.md``): own ports, data
    directory and config, so that stopping it touches nobody else."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="assetsync-rabbit-"))
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"assetsync-faults-{os.getpid()}@localhost"
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        for child in self.dir.iterdir():
            shutil.chown(child, "rabbitmq", "rabbitmq")
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 90.0) -> None:
        env = {
            "HOME": "/var/lib/rabbitmq",  # where the shared Erlang cookie is
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self.dir / "feature_flags"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
        }
        with (self.dir / "server.out").open("ab") as out:
            self._server = subprocess.Popen(
                ["runuser", "-u", "rabbitmq", "--", str(RABBIT_BIN / "rabbitmq-server")],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.ctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout + 10)

    def stop(self) -> None:
        self.ctl("stop", timeout=60)
        if self._server is not None:
            self._server.wait(30)
            self._server = None

    def close_all_connections(self) -> None:
        self.ctl("close_all_connections", "fault test")

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:  # await_startup fails at once while the node is not up at all
            result = subprocess.run(
                [
                    "runuser",
                    "-u",
                    "rabbitmq",
                    "--",
                    "env",
                    "HOME=/var/lib/rabbitmq",
                    str(RABBIT_BIN / "rabbitmqctl"),
                    "-n",
                    self.node,
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if result.returncode == 0:
                return result.stdout
            if args[0] != "await_startup" or time.monotonic() > deadline:
                raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()}")
            time.sleep(0.5)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        if self._server is not None:
            self._server.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Outcome:
    """What a scenario saw: the user's checks and the recovery figures."""

    fault: str
    phase: str
    run: dict[str, Any]
    assets: int
    distinct_assets: int
    stale_logins: list[str]
    dead_letters: int
    queues_left: dict[str, int]
    workers_running: int
    jira_faults_served: int
    jira_repeats: int  # user look-ups and pages asked for more than once
    injected_after: float  # seconds from the run's request to the fault
    recovered_in: float  # seconds from the fault's end to a login synced again
    finished_in: float  # seconds from the run's request to the run's end
    held_logins_in: float = 0.0  # from the fault's end to every login made during it synced
    done_after_fault: float = 0.0  # from the fault's end to the run's end
    notes: list[str] = field(default_factory=list)


class Lab:
    """One scenario's world: a database, a topology, a fake Jira, two workers, proxies.

    :param node: the lab's RabbitMQ node.
    :param database_url: a maintenance database URL of the shared PostgreSQL.
    :param workdir: where worker logs go.
    :param pair: a PostgreSQL primary and standby of the lab's own (``lab.pg_pair``)
        instead of the shared server: workers reach it by its multi-host URL, without
        a proxy, and the ``switchover`` fault fails it over.
    """

    def __init__(
        self, *, node: RabbitNode, database_url: str, workdir: Path, pair: Any = None
    ) -> None:
        self.node = node
        self.pair = pair
        if pair is not None:
            database_url = pair.url()
        self.maintenance_url = database_url
        self.workdir = workdir
        self.topology = Topology(
            prefix=f"assetsync-fault-{uuid.uuid4().hex[:10]}", retry_delays=RETRY_DELAYS
        )
        self.broker = Broker(url=node.url, topology=self.topology)
        self.db_name = f"assetsync_fault_{uuid.uuid4().hex[:12]}"
        self.database_url = psycopg.conninfo.make_conninfo(database_url, dbname=self.db_name)
        self.jira = FakeJira(flavor="datacenter").start()
        pg = psycopg.conninfo.conninfo_to_dict(self.database_url)
        self.amqp_proxy = Proxy(("127.0.0.1", node.port))
        self.db_proxy = (
            None
            if pair is not None
            else Proxy((str(pg.get("host") or "127.0.0.1"), int(pg.get("port") or 5432)))
        )
        self.workers: list[WorkerProcess] = []
        migrate(self.database_url)
        with psycopg.connect(self.database_url) as conn:  # an admin adds a field for groups
            conn.execute(
                "INSERT INTO asset_fields (asset_type_id, name, field_type)"
                " SELECT id, 'Groups', 'text' FROM asset_types WHERE name = 'Employee'"
            )
        self.jira.set_delay(0.004, path_contains="expand=groups")

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.jira.stop()
        self.amqp_proxy.close()
        if self.db_proxy is not None:
            self.db_proxy.close()
        with contextlib.suppress(Exception):
            self.broker.delete_all()
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.db_name)
                )
            )

    def start_worker(self) -> WorkerProcess:
        pg = psycopg.conninfo.conninfo_to_dict(self.database_url)
        if self.db_proxy is not None:
            pg.update(host="127.0.0.1", port=str(self.db_proxy.port))
        env = worker_env(
            amqp_url=self.amqp_proxy.url(self.node.url),
            database_url=psycopg.conninfo.make_conninfo(**pg),  # type: ignore[arg-type]
            topology=self.topology,
            jira_url=self.jira.url,
            extra=WORKER_ENV,
        )
        worker = WorkerProcess(env=env, log_path=self.workdir / f"worker-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker.start()

    # -- the faults ----------------------------------------------------------------------

    def inject(self, fault: str) -> Callable[[], None]:
        """Start ``fault``; return what ends it (a no-op for faults that are over at once)."""
        if fault == "connections-closed":
            self.node.close_all_connections()
            time.sleep(1.5)
            self.node.close_all_connections()
        elif fault == "database-connections-killed":
            self._kill_connections()
            time.sleep(1.5)
            self._kill_connections()
        elif fault == "workers-killed":
            for worker in self.workers:
                worker.kill()
            self.start_worker()
            self.start_worker()
        elif fault == "broker-restarted":
            self.node.stop()
            time.sleep(2)
            self.node.start()
        elif fault == "broker-silent":
            self.amqp_proxy.go_silent()
        elif fault == "database-silent":
            assert self.db_proxy is not None
            self.db_proxy.go_silent()
        elif fault == "database-read-only":
            # What a switchover, a lagging virtual IP or a pooler still pointing at the
            # old primary look like, on this database alone.
            self._set_read_only(True)

            def end() -> None:
                time.sleep(READ_ONLY_FOR)
                self._set_read_only(False)

            return end
        elif fault == "switchover":
            if self.pair is None:
                raise ValueError("the switchover needs a PostgreSQL pair: Lab(pair=...)")
            self.pair.fail_over()
        elif fault == "jira-storm":
            self.jira.fail_next(20, status=503)
            self.jira.fail_next(5, status=429, retry_after=1)
            return lambda: wait_for(lambda: self.jira.faults_served >= 25, what="the storm")
        elif fault == "none":
            pass
        elif fault == "jira-slow":
            self.jira.set_delay(1.5)  # over the workers' 1 s timeout
            return lambda: (time.sleep(4), self.jira.set_delay(0.0))  # type: ignore[func-returns-value]
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return lambda: None

    def _set_read_only(self, on: bool) -> None:
        """``default_transaction_read_only`` for new connections of the lab's database, and
        its connections ended, so that the workers' next ones are opened under it."""
        name = sql.Identifier(self.db_name)
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(name)
                if on
                else sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(name)
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db_name],
            )

    def _kill_connections(self) -> int:
        with psycopg.connect(self.maintenance_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'assetsync'",
                [self.db_name],
            ).fetchall()
        return len(rows)

    # -- the scenario --------------------------------------------------------------------

    def run(self, fault: str, phase: str) -> Outcome:
        """Run a bulk sync with logins, inject ``fault`` in ``phase``, check the result."""
        jira = self.jira
        during = LOGINS_DURING.get(fault, LOGINS)
        jira.add_sample_users(USERS - LOGINS - during - 1)
        logins = [
            jira.add_user(f"login.user{i:02d}", display_name=f"Login User{i:02d}")
            for i in range(LOGINS + during)
        ]
        probe = jira.add_user("probe.user", display_name="Probe Before")
        self.start_worker()
        self.start_worker()
        for user in logins[:LOGINS]:  # changed in Jira, then logged in: before the run
            jira.update_user(user["name"], display_name=user["displayName"] + " Changed")
            self.broker.publish_raw(login_body(username=user["name"]), routing_key="user-logged-in")
        if phase == "fanning-out":
            jira.set_delay(0.2, path_contains="/user/list")  # the scan is cut mid-way
        requested = time.monotonic()
        run_id = request_bulk(self.broker)
        self._wait_for_phase(run_id, phase)
        injected = time.monotonic()
        end_fault = self.inject(fault)
        for user in logins[LOGINS:]:  # changed, and logged in, while the fault goes on
            jira.update_user(user["name"], display_name=user["displayName"] + " Changed")
            self._publish_login(user["name"])
        end_fault()
        if phase == "fanning-out":
            jira.set_delay(0.0, path_contains="/user/list")
        # Recovery: a login published once the fault is over, until its asset shows it.
        healed = time.monotonic()
        jira.update_user("probe.user", display_name="Probe After")
        self._publish_login("probe.user")
        wait_for(
            lambda: (
                (a := asset_of(self.database_url, probe["key"]))
                and a["fields"]["Full name"] == "Probe After"
            ),
            timeout=120,
            what="a login after the fault",
        )
        recovered_in = time.monotonic() - healed
        wait_for(
            lambda: not self._stale(logins[LOGINS:]), timeout=120, what="the logins made during it"
        )
        held_logins_in = time.monotonic() - healed
        run = wait_for(
            lambda: (
                (r := run_summary(self.database_url, run_id))
                and r["state"] in ("done", "failed")
                and r
            ),
            timeout=240,
            what="the run to end",
        )
        finished_in = time.monotonic() - requested
        done_after_fault = time.monotonic() - healed
        work = [self.topology.login_queue, self.topology.bulk_queue, self.topology.user_sync_queue]
        wait_quiet(self.broker, work + retry_queues(self.topology), quiet=2.0)
        outcome = self._outcome(
            fault, phase, run, logins, injected - requested, recovered_in, finished_in
        )
        outcome.held_logins_in, outcome.done_after_fault = held_logins_in, done_after_fault
        return outcome

    def _stale(
        self, logins: list[dict[str, Any]], by_key: dict[str, Any] | None = None
    ) -> list[str]:
        """The users among ``logins`` whose asset does not show their Jira data yet."""
        if by_key is None:
            by_key = {a["jira_id"]: a for a in user_assets(self.database_url)}
        return [u["name"] for u in logins if not _fresh(by_key.get(u["key"]), self.jira, u)]

    def _publish_login(self, username: str) -> None:
        # Straight to the node: the broker may be down or silent at this moment, and a
        # producer retries until it is confirmed (as the admin's producers do).
        deadline = time.monotonic() + 120
        while True:
            try:
                Broker(url=self.node.url, topology=self.topology).publish_raw(
                    login_body(username=username), routing_key="user-logged-in"
                )
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _wait_for_phase(self, run_id: str, phase: str) -> None:
        def reached() -> bool:
            run = run_summary(self.database_url, run_id)
            if run is None:
                return False
            if phase == "fanning-out":
                return run["state"] == "fanning_out" and run["matched"] >= 500
            return run["state"] == "processing" and run["done"] >= 200

        wait_for(reached, timeout=60, what=f"the run to be {phase}")
        run = run_summary(self.database_url, run_id)
        assert run is not None and run["state"] in ("fanning_out", "processing"), run
        if phase == "processing":
            assert run["done"] < USERS, "the run ended before the fault could be injected"

    def _outcome(
        self,
        fault: str,
        phase: str,
        run: dict[str, Any],
        logins: list[dict[str, Any]],
        injected_after: float,
        recovered_in: float,
        finished_in: float,
    ) -> Outcome:
        assets = user_assets(self.database_url)
        by_key = {a["jira_id"]: a for a in assets}
        stale = self._stale(logins, by_key)
        queues = [self.topology.login_queue, self.topology.bulk_queue]
        queues += [self.topology.user_sync_queue, self.topology.dead_queue]
        queues += retry_queues(self.topology)
        left = {q: self.broker.count(q) for q in queues}
        return Outcome(
            fault=fault,
            phase=phase,
            run=run,
            assets=len(assets),
            distinct_assets=len(by_key),
            stale_logins=stale,
            dead_letters=left.pop(self.topology.dead_queue),
            queues_left={q: n for q, n in left.items() if n},
            workers_running=sum(1 for w in self.workers if w.proc and w.proc.poll() is None),
            jira_faults_served=self.jira.faults_served,
            jira_repeats=_repeats(self.jira),
            injected_after=injected_after,
            recovered_in=recovered_in,
            finished_in=finished_in,
        )


def _fresh(asset: dict[str, Any] | None, jira: FakeJira, user: dict[str, Any]) -> bool:
    return asset is not None and (
        asset["fields"]["Full name"] == jira.user_json(user["name"])["displayName"]
    )


def _repeats(jira: FakeJira) -> int:
    """Requests for users or pages made more than once (start-up checks aside)."""
    counts = Counter(target for _, target in jira.request_log if "/user" in target)
    return sum(n - 1 for n in counts.values())


@contextlib.contextmanager
def rabbit_node() -> Iterator[RabbitNode]:
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.destroy()


def stop_workers(lab: Lab) -> list[int]:
    """SIGTERM every running worker; their exit codes."""
    codes = []
    for worker in lab.workers:
        if worker.proc and worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
            codes.append(worker.proc.wait(30))
    return codes
