"""Plumbing the benchmarks share: a throwaway database, broker clean-up, child processes
with log files and their peak memory, polling, percentiles.

Nothing here measures anything; it keeps the measuring modules short.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pika
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


def unique_suffix() -> str:
    return uuid.uuid4().hex[:10]


@contextlib.contextmanager
def fresh_database(admin_url: str, suffix: str) -> Iterator[str]:
    """Create ``assetsync_bench_<suffix>``; yield its URL; drop it (even if in use)."""
    name = f"assetsync_bench_{suffix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def checkpoint(database_url: str) -> None:
    """Flush dirty buffers now, so that a timed phase does not pay for the previous one."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def delete_broker_objects(amqp_url: str, queues: Iterable[str], exchanges: Iterable[str]) -> None:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        channel = conn.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` (not counting delivered, unacked ones)."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    what: str,
    alive: Callable[[], None] = lambda: None,
) -> T:
    """Call ``check`` every ``interval`` s until it returns something truthy.

    :param alive: called each round; raises if something the wait depends on died.
    :raises TimeoutError: after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def peak_rss_mib(pid: int) -> float:
    """``VmHWM`` of a live process: the most resident memory it ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def rss_mib(pid: int) -> float:
    """``VmRSS`` of a live process: its resident memory now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Child:
    """A Python module run as a child process, its output in a log file.

    :param module: what ``python -m`` runs, with its arguments.
    :param with_stdin: give it a pipe on stdin (see ``send``).
    """

    name: str
    module: list[str]
    env: dict[str, str]
    log_path: Path
    with_stdin: bool = False
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *self.module],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.PIPE if self.with_stdin else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            tail = "\n".join(self.log().splitlines()[-20:])
            raise RuntimeError(f"{self.name} exited with {code}:\n{tail}")

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.log().count(text) >= count,
            timeout=timeout,
            interval=0.05,
            what=f"{self.name} to log {text!r} {count}x",
            alive=self.check_alive,
        )

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Make sure it is gone (clean-up after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


# -- CPU accounting ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def process_cpu_s(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if it is gone.

    :param with_children: add the CPU of its exited, reaped children (the postmaster
        reaps every PostgreSQL backend).
    """
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 of proc(5); fields[0] is field 3.
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _parent_of(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if _parent_of(int(entry.name)) == parent:
                    found.append(int(entry.name))
    return found


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The process that listens on a local TCP port (this machine's, as root), or None."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
    return None


@dataclass(frozen=True)
class Servers:
    """The PostgreSQL postmaster and the RabbitMQ node the bench talks to, whose CPU it
    meters: on a machine with several clusters or nodes (a private one beside the shared
    one), only these count."""

    postmaster: int | None
    rabbitmq: int | None

    @classmethod
    def find(cls, database_url: str, amqp_url: str) -> Servers:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            try:  # while the backend lives: its parent is the postmaster
                postmaster: int | None = _parent_of(int(row[0]))
            except OSError:  # not on this machine
                postmaster = None
        port = urllib.parse.urlsplit(amqp_url).port or 5672
        return cls(postmaster=postmaster, rabbitmq=pid_listening_on(port))


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def cpu_by_group(pids: dict[str, list[int]], servers: Servers) -> dict[str, float]:
    """CPU seconds so far of given process groups, plus the servers and the machine.

    ``postgres`` is the postmaster of the bench's cluster and every backend of it,
    exited ones included (via the postmaster's children time); ``rabbitmq`` the Erlang
    VM of the bench's node; ``bench`` this process (the fake Jira and the login probes);
    ``machine`` everything, all cores. A server shared with others shows their load too.
    """
    groups = {name: sum(process_cpu_s(p) for p in members) for name, members in pids.items()}
    pm = servers.postmaster
    groups["postgres"] = (
        process_cpu_s(pm, with_children=True) + sum(process_cpu_s(p) for p in children_of(pm))
        if pm is not None
        else 0.0
    )
    groups["rabbitmq"] = process_cpu_s(servers.rabbitmq) if servers.rabbitmq else 0.0
    groups["bench"] = process_cpu_s(os.getpid())
    groups["machine"] = machine_cpu_s()[0]
    return groups


@dataclass
class CpuMeter:
    """CPU seconds each group used between ``start`` and ``stop``, and the wall time."""

    pids: dict[str, list[int]]
    servers: Servers
    _start: dict[str, float] = field(default_factory=dict)
    _started_at: float = 0.0
    used: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._start = cpu_by_group(self.pids, self.servers)

    def stop(self) -> None:
        end = cpu_by_group(self.pids, self.servers)
        self.wall_s = time.monotonic() - self._started_at
        self.used = {k: end[k] - self._start.get(k, 0.0) for k in end}
