"""The console in a subprocess (``python -m console``), and a browser to drive it:
Debian's Chromium through Playwright (its own browser download is not used)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from lab.harness import ROOT, wait_for

# Chromium as root, headless, on a machine whose network reaches nothing: without the
# background-networking flags it tries Google's hosts at every start.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "no chromium on PATH: apt-get install -y chromium (.ci/run does)"
    return found


@dataclass
class ConsoleProcess:
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    url: str = ""

    def start(self) -> ConsoleProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "console"],
            env={**self.env, "ASSETSYNC_CONSOLE_PORT": "0"},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        found = wait_for(
            lambda: (
                re.search(r"console on (http://\S+)", self.log()) or self.proc.poll() is not None
            ),
            timeout=30,
            what="the console to listen",
        )
        assert self.proc.poll() is None, f"console exited early:\n{self.log()}"
        self.url = found.group(1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code


def csrf(page: httpx.Response) -> str:
    """The CSRF token of a page's forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def signed_in(console: ConsoleProcess, user: str = "ann", password: str = "pw") -> httpx.Client:
    """An HTTP client signed in to ``console`` (asking for HTML, as a browser does)."""
    http = httpx.Client(base_url=console.url, headers={"Accept": "text/html"})
    token = csrf(http.get("/"))
    answer = http.post("/sign-in", data={"username": user, "password": password, "csrf": token})
    assert answer.status_code == 303, answer.text
    return http


@contextlib.contextmanager
def console_role(admin_url: str, database_url: str) -> Iterator[str]:
    """``database_url`` for a login role of its own in the console's group role
    (``assetsync_console``, granted by the migrations): the console's operations with
    exactly its grants, as deployed. The login role is dropped at the end."""
    name = f"t{uuid.uuid4().hex[:10]}_console"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE assetsync_console").format(sql.Identifier(name))
        )
    try:
        yield psycopg.conninfo.make_conninfo(database_url, user=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            # Its sessions end with the console; a straggler must not keep the role.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [name],
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
