"""The console in a subprocess (``python -m console``), and a browser to drive it:
Debian's Chromium through Playwright (its own browser download is not used)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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
