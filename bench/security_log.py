"""``python -m bench.security_log [--megabytes 100]``: how fast the security-log source
reads a backlog.

Writes a realistic ``atlassian-jira-security.log`` of the given size (one busy hour:
REST clients and browser users of a few hundred accounts passing authentication over
and over, some failures, anonymous and other lines), then runs
``python -m producers.security_log --from-start`` on it against the local RabbitMQ
(queues of its own) and times it from start until its saved position reaches the end
of the file, that is until every login event was confirmed. Prints lines/s, MB/s,
events published and folded, CPU and peak memory of the source.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.infra import (
    DEFAULT_AMQP_URL,
    Child,
    delete_broker_objects,
    process_cpu_s,
    queue_depth,
    unique_suffix,
    wait_until,
)
from schemas.topology import Topology

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def write_log(path: Path, *, megabytes: float, users: int, seed: int = 7) -> int:
    """A security log of about ``megabytes`` MB over one hour; return its line count."""
    rng = random.Random(seed)
    names = [f"user{i:04d}" for i in range(users)]
    target = int(megabytes * 1_000_000)
    lines = written = 0
    with path.open("w") as f:
        while written < target:
            batch = []
            for _ in range(1000):
                at = START + timedelta(seconds=3600 * written / target)
                stamp = at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}+0000"
                thread = f"http-nio-8080-exec-{rng.randint(1, 200)}"
                user = names[min(int(rng.paretovariate(1.2)) - 1, users - 1)]
                rid = f"{rng.randint(1, 86399)}x{rng.randint(1, 10**6)}x{rng.randint(1, 9)}"
                kind = rng.random()
                if kind < 0.90:
                    msg = f"{user} {rid} - 10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)} /rest/api/2/search The user '{user}' has PASSED authentication."
                elif kind < 0.93:
                    msg = f"anonymous {rid} 1qvu69a 10.0.0.7 /login.jsp The user '{user}' has FAILED authentication.  Failure count equals 1"
                elif kind < 0.95:
                    msg = f"anonymous {rid} - 10.0.0.9 /rest/api/2/serverInfo The user 'anonymous' has PASSED authentication."
                else:
                    msg = f"{user} {rid} 1a2b3c 10.0.0.7 /secure/Dashboard.jspa HttpSession created [1a2b3c]"
                batch.append(f"{stamp} {thread} {msg}\n")
            text = "".join(batch)
            f.write(text)
            written += len(text)
            lines += len(batch)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.security_log", description=__doc__)
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--users", type=int, default=500, help="accounts in the log")
    parser.add_argument("--min-interval", type=float, default=300.0)
    parser.add_argument(
        "--amqp-url", default=os.environ.get("ASSETSYNC_AMQP_URL", DEFAULT_AMQP_URL)
    )
    args = parser.parse_args(argv)

    topology = Topology(prefix=f"assetsync-bench-{unique_suffix()}")
    with tempfile.TemporaryDirectory(prefix="seclog-bench-") as tmp:
        work = Path(tmp)
        log_file, state = work / "atlassian-jira-security.log", work / "state.json"
        t = time.monotonic()
        lines = write_log(log_file, megabytes=args.megabytes, users=args.users)
        size = log_file.stat().st_size
        print(f"wrote {size / 1e6:.1f} MB, {lines:,} lines in {time.monotonic() - t:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        env.update(ASSETSYNC_AMQP_URL=args.amqp_url, ASSETSYNC_AMQP_PREFIX=topology.prefix)
        child = Child(
            name="security_log",
            module=[
                "producers.security_log",
                str(log_file),
                "--from-start",
                "--state-file",
                str(state),
                "--min-interval",
                str(args.min_interval),
            ],
            env=env,
            log_path=work / "source.log",
        )
        try:
            started = time.monotonic()
            child.start()
            wait_until(
                lambda: state.exists() and json.loads(state.read_text())["offset"] == size,
                timeout=600,
                interval=0.02,
                what="the source to reach the end of the log",
                alive=child.check_alive,
            )
            elapsed = time.monotonic() - started
            cpu = process_cpu_s(child.pid)
            rss = child.peak_rss_mib()
            code = child.stop()
            published = queue_depth(args.amqp_url, topology.login_queue)
            summary = next(
                ln for ln in reversed(child.log().splitlines()) if "lines read" in ln
            ).split("stopped; ", 1)[1]
        finally:
            child.kill()
            delete_broker_objects(
                args.amqp_url,
                [q.name for q in topology.queues(retry=False)],
                [e.name for e in topology.exchanges()],
            )
    print(f"source: {summary} (exit {code})")
    print(
        f"{lines:,} lines ({size / 1e6:.1f} MB) in {elapsed:.2f} s: {lines / elapsed:,.0f} lines/s,"
        f" {size / 1e6 / elapsed:.1f} MB/s; {published:,} login events in the queue;"
        f" source CPU {cpu:.1f} s, peak RSS {rss:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
