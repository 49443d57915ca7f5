"""A worker whose wall clock is off: ``python -m tests.skewed_clock`` runs ``python -m
worker`` under libfaketime (Debian package ``faketime``), set up by ``skewed_env``.

Only the wall clock is moved (``FAKETIME_DONT_FAKE_MONOTONIC=1``): timeouts and
heartbeats go by the monotonic clock, as on a real host whose clock is wrong. libfaketime
0.9.10 (Debian 12) turns an absolute monotonic ``clock_nanosleep``, which ``time.sleep``
uses, into a negative time (EINVAL) in that mode, so this launcher sleeps on a condition
variable instead, which it leaves alone.
"""

from __future__ import annotations

import runpy
import threading
import time
from pathlib import Path

LIBFAKETIME = (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
    Path("/usr/local/lib/faketime/libfaketime.so.1"),
)


def libfaketime() -> Path | None:
    return next((p for p in LIBFAKETIME if p.exists()), None)


def skewed_env(seconds: int) -> dict[str, str]:
    """The environment that puts a process's wall clock ``seconds`` off (+ ahead)."""
    lib = libfaketime()
    assert lib is not None, "libfaketime is not installed (apt-get install faketime)"
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME": f"{seconds:+d}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


if __name__ == "__main__":
    time.sleep = _sleep
    runpy.run_module("worker", run_name="__main__", alter_sys=True)
