"""The security-log source as a process of its own, and security-log lines to feed it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lab.harness import ROOT, wait_for
from schemas.topology import Topology

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def passed(user: str, at: datetime = T0, *, thread: str = "http-nio-8080-exec-14") -> str:
    """A pre-9.5 (Log4j 1) line for a successful authentication."""
    stamp = at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}+0000"
    return (
        f"{stamp} {thread} {user} 310x2803x1 zokxj2 10.0.0.7 /rest/api/2/myself"
        f" The user '{user}' has PASSED authentication."
    )


def failed(user: str, at: datetime = T0) -> str:
    stamp = at.strftime("%Y-%m-%d %H:%M:%S,000+0000")
    return (
        f"{stamp} http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a 10.0.0.7 /login.jsp"
        f" The user '{user}' has FAILED authentication.  Failure count equals 1"
    )


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def append(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.writelines(line + "\n" for line in lines)


@dataclass
class SecurityLogProcess:
    """``python -m producers.security_log`` in a subprocess, its log in a file."""

    amqp_url: str
    topology: Topology
    log_path: Path
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)  # more ASSETSYNC_* settings
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, *, wait: bool = True) -> SecurityLogProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        env.update(
            ASSETSYNC_AMQP_URL=self.amqp_url,
            ASSETSYNC_AMQP_PREFIX=self.topology.prefix,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        self._out = self.log_path.open("ab")
        self._mark = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "producers.security_log", *self.args],
            env=env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        if wait:
            wait_for(
                lambda: "following" in self.output() or self.proc.poll() is not None,
                what="the source to start",
            )
            assert self.proc.poll() is None, f"exited early:\n{self.output()}"
        return self

    def output(self) -> str:
        """What this run (not earlier ones) printed."""
        return self.log_path.read_bytes()[self._mark :].decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM it if it still runs; its exit code (again if stopped before)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        if not self._out.closed:
            self._out.close()
        return code

    def status_url(self) -> str:
        """The base URL of its status endpoint (started with ASSETSYNC_SECURITY_LOG_LISTEN)."""
        found = wait_for(
            lambda: re.search(r"status on (http://\S+)/healthz", self.output()),
            what="the status endpoint",
        )
        return found.group(1)
