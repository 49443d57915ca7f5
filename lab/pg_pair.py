"""A PostgreSQL primary and its streaming standby of a test's own, to fail over for real
(``../shared/notes/postgres-failover.md``): two clusters on ports of their own, in a
temporary directory, run as user ``postgres``; nothing of the machine's server changes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from lab.faults import free_port


def bindir() -> Path | None:
    """Where PostgreSQL's server programs are (``pg_config --bindir``), if installed."""
    try:
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(found)
    return path if (path / "initdb").exists() and (path / "pg_basebackup").exists() else None


def pair_possible() -> str | None:
    """Why a pair cannot be run here, or None if it can."""
    if os.geteuid() != 0:
        return "running a PostgreSQL pair needs root (to run it as user postgres)"
    if bindir() is None:
        return "PostgreSQL's server programs (initdb, pg_basebackup) are not installed"
    return None


class PostgresPair:
    """``a`` starts as the primary, ``b`` as its standby.

    :param synchronous: whether a commit waits for the standby to have it
        (``synchronous_standby_names``); asynchronous, a commit acknowledged just before
        the primary dies can be missing on the promoted standby.
    """

    def __init__(self, *, synchronous: bool = True) -> None:
        bin_ = bindir()
        assert bin_ is not None
        self.bin = bin_
        self.dir = Path(tempfile.mkdtemp(prefix="assetsync-pgpair-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.ports = {"a": free_port(), "b": free_port()}
        self.synchronous = synchronous
        self.primary = "a"

    def url(self, dbname: str = "postgres") -> str:
        """A multi-host URL: libpq tries each and keeps the one that takes writes."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_url(self, node: str, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports[node]}/{dbname}"

    # A cluster made by initdb once per process, copied for each pair: initdb is the
    # slowest step (seconds), and every pair starts from the same empty cluster.
    _template: Path | None = None

    def start(self) -> PostgresPair:
        template = PostgresPair._template
        if template is None or not template.exists():
            template = Path(tempfile.mkdtemp(prefix="assetsync-pgtemplate-")) / "data"
            shutil.chown(template.parent, "postgres", "postgres")
            self._pg("initdb", "-D", str(template), "-A", "trust", "-U", "postgres")
            PostgresPair._template = template
            atexit.register(shutil.rmtree, template.parent, True)
        self._pg("cp", "-a", str(template), self._data("a"))
        extra = ["-c", "synchronous_standby_names='*'"] if self.synchronous else []
        self._ctl("a", "start", extra)
        self._pg(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.ports["a"]),
            "-U",
            "postgres",
            "-D",
            self._data("b"),
            "-R",
        )
        self._ctl("b", "start")
        self._wait_streaming()
        return self

    def fail_over(self) -> None:
        """The primary dies (an immediate stop: no checkpoint, connections cut) and the
        standby is promoted; returns once the new primary takes writes."""
        old, new = self.primary, "b" if self.primary == "a" else "a"
        self._pg("pg_ctl", "-D", self._data(old), "-m", "immediate", "stop")
        self._pg("pg_ctl", "-D", self._data(new), "-w", "promote")
        self.primary = new
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.node_url(new), connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby on port {self.ports[new]} was not promoted")
            time.sleep(0.1)

    def destroy(self) -> None:
        for node in self.ports:
            if (Path(self._data(node)) / "postmaster.pid").exists():
                with contextlib.suppress(Exception):
                    self._pg("pg_ctl", "-D", self._data(node), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _data(self, node: str) -> str:
        return str(self.dir / node)

    def _ctl(self, node: str, action: str, extra: list[str] | None = None) -> None:
        options = ["-p", str(self.ports[node]), "-k", str(self.dir)]
        options += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", *(extra or [])]
        self._pg(
            "pg_ctl",
            "-D",
            self._data(node),
            "-l",
            str(self.dir / f"{node}.log"),
            "-w",
            "-o",
            " ".join(options),
            action,
        )

    def _pg(self, program: str, *args: str) -> None:
        path = shutil.which(program) if program == "cp" else str(self.bin / program)
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(path), *args],
            capture_output=True,
            text=True,
            cwd=self.dir,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {result.stderr.strip()}")

    def _wait_streaming(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            with psycopg.connect(self.node_url("a")) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the standby does not stream from the primary")
            time.sleep(0.1)


@contextlib.contextmanager
def postgres_pair(*, synchronous: bool = True) -> Iterator[PostgresPair]:
    pair = PostgresPair(synchronous=synchronous)
    try:
        yield pair.start()
    finally:
        pair.destroy()
