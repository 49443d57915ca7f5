"""Following a bulk run: a live progress line while it goes, a summary when it ends."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO
from uuid import UUID

from worker.cli import fail, one_line, say
from worker.errors import TransientError
from worker.store.views import Run, RunStore
from worker.text import printable

PROG = "python -m producers.bulk_sync"
POLL_SECONDS = 0.5
PLAIN_PROGRESS_SECONDS = 5.0  # a log file wants a line now and then, not one per poll
RATE_WINDOW_SECONDS = 5.0
WAITING = "waiting for a worker to pick up the request…"
DRY_RUN_NOTE = "(dry run: nothing was written; counts say what would happen)"
COUNTS = ("matched", "created", "updated", "unchanged", "deactivated", "missing", "failed")

# ------------------------------------------------------------------------ progress


class RateMeter:
    """Users per second over the last few seconds, so the ETA follows the current pace."""

    def __init__(self, *, window: float = RATE_WINDOW_SECONDS) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> None:
        self._samples.append((at, done))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self._window:
            self._samples.popleft()

    def rate(self) -> float | None:
        if not self._samples:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None


def progress_line(run: Run, rate: float | None, *, width: int = 80) -> str:
    """One line of at most ``width - 1`` characters: a wrapped line cannot be rewritten
    with ``\\r``. The bar takes what room the numbers leave."""
    # While fanning out, the worker is still finding users: the total is a lower bound.
    total = f"{run.matched}+" if run.state == "fanning_out" else str(run.matched)
    pace = "-" if rate is None else f"{rate:.1f}"
    head = f"{run.state:<11} "
    tail = f" {run.done}/{total}  failed {run.failed}  {pace} users/s  ETA {_eta(run, rate)}"
    bar_width = min(30, width - 1 - len(head) - len(tail) - 2)
    if bar_width < 5:
        return (head + tail.lstrip())[: width - 1]
    filled = bar_width * run.done // run.matched if run.matched else 0
    return f"{head}[{'#' * filled}{'-' * (bar_width - filled)}]{tail}"


def _eta(run: Run, rate: float | None) -> str:
    if run.state != "processing" or not rate or rate <= 0:
        return "?"  # the total is not known yet, or nothing moved lately
    left = round((run.matched - run.done) / rate)
    hours, minutes, seconds = left // 3600, left // 60 % 60, left % 60
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class Progress:
    """What a person watching sees on stderr: a live line on a terminal, a plain line
    every few seconds elsewhere (a log file would fill up with ``\\r`` rewrites).

    :param stream: where to write; None for silence (``--json``).
    """

    def __init__(
        self, *, stream: TextIO | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._live = stream is not None and stream.isatty()
        self._clock = clock
        self._meter = RateMeter()
        self._told_waiting = False
        self._told_joined = False
        self._last_plain: float | None = None
        self._drawn = 0  # length of the live line on screen

    def waiting(self) -> None:
        if self._stream is not None and not self._told_waiting:
            say(WAITING, file=self._stream)
            self._told_waiting = True

    def joined(self, request_id: UUID, run: Run) -> None:
        if self._stream is not None and not self._told_joined:
            say(joined_line(request_id, run), file=self._stream)
            self._told_joined = True

    def update(self, run: Run) -> None:
        now = self._clock()
        self._meter.add(now, run.done)
        if self._stream is None:
            return
        if self._live:
            line = progress_line(run, self._meter.rate(), width=_terminal_width(self._stream))
            self._stream.write("\r" + line.ljust(self._drawn))
            self._stream.flush()
            self._drawn = len(line)
        elif self._last_plain is None or now - self._last_plain >= PLAIN_PROGRESS_SECONDS:
            say(progress_line(run, self._meter.rate()), file=self._stream)
            self._last_plain = now

    def close(self) -> None:
        if self._stream is not None and self._drawn:
            say(file=self._stream)
            self._drawn = 0


def _terminal_width(stream: TextIO) -> int:
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        width = 0
    return width if width > 0 else 80


# ------------------------------------------------------------------------- waiting


class WaitTimeout(TransientError):
    """The run did not end within ``--timeout``; it goes on without us."""


def follow_run(
    store: RunStore,
    run_id: UUID,
    *,
    progress: Progress,
    timeout: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Run:
    """Poll the run until it is done or failed.

    :raises WaitTimeout: it did not end within ``timeout`` seconds.
    :raises StoreUnavailable: the asset store could not be read.
    """
    deadline = None if timeout is None else clock() + timeout
    while True:
        run = store.get(run_id)
        if run is None:
            progress.waiting()
        else:
            if run.run_id != run_id:
                progress.joined(run_id, run)
            progress.update(run)
            if run.finished:
                return run
        if deadline is not None and clock() >= deadline:
            raise WaitTimeout(_timeout_message(run_id, run, timeout or 0))
        sleep(POLL_SECONDS)


def _timeout_message(run_id: UUID, run: Run | None, timeout: float) -> str:
    if run is None:
        return f"gave up after {timeout:g}s: no worker has picked up run {run_id} yet"
    return (
        f"gave up after {timeout:g}s: run {run_id} is still {run.state}"
        f" ({run.done}/{run.matched} done); it goes on without us"
    )


# -------------------------------------------------------------------------- output


def joined_line(request_id: UUID, run: Run) -> str:
    """What the requester of a request that joined another's open run is told."""
    return (
        f"request {request_id} joined run {run.run_id}, open for the same filters when it"
        f" arrived (requested by {printable(run.requested_by, 60)}); following that run"
    )


def summary_json(run: Run) -> dict[str, object]:
    summary: dict[str, object] = {
        "run_id": str(run.run_id),
        "state": run.state,
        "dry_run": run.dry_run,
        **{name: getattr(run, name) for name in COUNTS},
        "duration_s": round(run.duration_s, 3),
    }
    if run.in_progress:  # how long since it last moved: past the stall bound it ends
        summary["idle_s"] = round(run.idle_s(datetime.now(UTC)), 1)
    if run.error:
        summary["error"] = run.error
    return summary


def summary_table(run: Run) -> str:
    rows = [(name, str(getattr(run, name))) for name in COUNTS]
    rows.append(("duration (s)", f"{run.duration_s:.1f}"))
    if run.in_progress:
        rows.append(("idle (s)", f"{run.idle_s(datetime.now(UTC)):.1f}"))
    lines = [f"run {run.run_id}  {run.state}"]
    lines += [f"  {label:<13}{value:>10}" for label, value in rows]
    if run.dry_run:
        lines.append(DRY_RUN_NOTE)
    return "\n".join(lines)


def runs_table(runs: list[Run]) -> str:
    if not runs:
        return "no sync runs yet"
    header = ("run", "state", "requested by", "started (UTC)", "matched", "done", "failed")
    rows = [
        (
            str(r.run_id),
            r.state,
            printable(r.requested_by, 60),  # from the request: anyone's text
            r.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            str(r.matched),
            str(r.done),
            str(r.failed),
            "yes" if r.dry_run else "no",
        )
        for r in runs
    ]
    table = [(*header, "dry run"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) + 1)]
    # Counts read best right-aligned; the rest left-aligned.
    align = [str.ljust] * 4 + [str.rjust] * 3 + [str.ljust]
    return "\n".join(
        "  ".join(align[i](cell, widths[i]) for i, cell in enumerate(row)).rstrip() for row in table
    )


def runs_json(runs: list[Run]) -> list[dict[str, object]]:
    return [
        {
            "run_id": str(r.run_id),
            "state": r.state,
            "requested_by": r.requested_by,
            "started_at": r.started_at.isoformat(),
            "matched": r.matched,
            "done": r.done,
            "failed": r.failed,
            "dry_run": r.dry_run,
        }
        for r in runs
    ]


def report(run: Run, *, as_json: bool, requested: UUID | None = None, prog: str = PROG) -> None:
    """The run's summary; for a request that joined it (``requested`` is not the run's
    id), the JSON also says so, and the text says it on stderr."""
    summary = summary_json(run)
    if requested is not None and requested != run.run_id:
        summary.update(request_id=str(requested), joined=True)
        if not as_json:
            say(joined_line(requested, run), file=sys.stderr)
    say(json.dumps(summary) if as_json else summary_table(run))
    if run.state == "failed":
        fail(prog, f"run failed: {one_line(run.error or 'no error was recorded')}")
