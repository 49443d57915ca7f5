"""Where worker time goes during a bulk run: py-spy, attached from outside.

``python -m bench.bulk_sync --py-spy DIR`` records each worker process (and this one,
which serves the fake Jira) from the publish of the bulk request until the run is done
(``py-spy record --format raw --threads --idle``, 100 samples/s, ``--nonblocking`` so
the workers are not paused), one collapsed-stack file per process in DIR. With
``--idle`` the samples are wall-clock time: waiting for PostgreSQL (psycopg's
``Connection.wait``) or for deliveries (``drain_events``) shows up as such;
``--py-spy-on-cpu`` records only samples on CPU instead, i.e. where CPU time goes. Profiled runs are slower (py-spy takes CPU from the same two cores):
read their shares, not their rates.

``python -m bench.worker_profile DIR/worker-0.txt [--thread NAME] [--top 25]`` sums a file
up: samples per thread, then the functions with the largest inclusive share (a frame
counted once per sample however deep it recurses) and the largest self share.

py-spy is not a project dependency: ``pip install py-spy`` into the venv first.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE = 100


@dataclass
class Recorder:
    """py-spy recorders attached to running processes."""

    out_dir: Path
    idle: bool = True  # False: only samples on CPU (where CPU time goes)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, pids: dict[str, int]) -> None:
        spy = shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("py-spy not found: pip install py-spy")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            argv = [spy, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw"]
            argv += ["--threads", "--nonblocking", *(["--idle"] if self.idle else [])]
            argv += ["-o", str(self.out_dir / f"{name}.txt")]
            log = (self.out_dir / f"{name}.py-spy.log").open("wb")
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        """Stop recording (SIGINT makes py-spy write its file)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """``frame;frame;... count`` lines (root first) as stack tuples -> samples."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def thread_of(stack: tuple[str, ...]) -> str:
    """The thread a stack was sampled in, from py-spy's first frame
    ``thread (123): name``; numbered pool threads are lumped together (``login-probe``,
    ``Thread (process_request_thread)``). A worker has ``MainThread`` and ``bulk``."""
    name = stack[0].partition(": ")[2] or "?"
    name = re.sub(r"-\d+ \(", " (", name)  # Thread-4 (process_request_thread)
    return re.sub(r"_\d+$", "", name)  # login-probe_3


def short(frame: str) -> str:
    """``func (module/path.py:123)`` -> ``func (path.py)`` so lines of one function add up."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = file.split("/")
    tail = "/".join(parts[-2:]) if len(parts) > 1 else file
    return f"{name} ({tail})"


def summarize(path: Path, thread: str | None, top: int) -> str:
    stacks = read_stacks(path)
    per_thread: Counter[str] = Counter()
    for stack, n in stacks.items():
        per_thread[thread_of(stack)] += n
    chosen = {s: n for s, n in stacks.items() if thread is None or thread_of(s) == thread}
    total = sum(chosen.values()) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, n in chosen.items():
        frames = [short(f) for f in stack[1:]]  # skip the thread/process label
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    lines = [f"{path.name}: {sum(stacks.values())} samples; per thread: {dict(per_thread)}"]
    lines.append(f"-- inclusive, thread {thread or 'all'} ({total} samples)")
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines.append("-- self")
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_profile", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", help="only this thread, e.g. MainThread or bulk")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarize(args.file, args.thread, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
