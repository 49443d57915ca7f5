"""``python -m bench.webhooks [--requests 5000] [--concurrency 32]``: how many signed
webhook deliveries the receiver takes per second.

Starts ``python -m producers.jira_webhooks`` against the local RabbitMQ (queues of its
own) and sends it signed ``user_updated`` deliveries, each with its own delivery id,
from ``--concurrency`` threads of this process, one keep-alive connection each. Every answer must be 200,
which the receiver gives only after RabbitMQ confirmed the message; the queue must end
with exactly one message per request. Prints requests/s and latency percentiles.
The load generator runs on the same 2 cores as the receiver and RabbitMQ.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.infra import (
    DEFAULT_AMQP_URL,
    Child,
    delete_broker_objects,
    percentile,
    process_cpu_s,
    queue_depth,
    unique_suffix,
    wait_until,
)
from schemas.topology import Topology

SECRET = b"bench-secret"


def delivery(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "timestamp": 1_700_000_000_000 + i,
            "webhookEvent": "user_updated",
            "user": {
                "accountId": f"5b10ac8d82e05b22cc7d{i:04x}",
                "accountType": "atlassian",
                "displayName": f"User {i}",
                "active": True,
            },
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
        "X-Atlassian-Webhook-Identifier": f"bench-{i}",
    }
    return body, headers


def fire(
    url: str, requests: int, concurrency: int, *, first: int = 0
) -> tuple[float, list[float], dict[int, int]]:
    """Send ``requests`` deliveries from ``concurrency`` threads, each with one
    keep-alive connection (http.client sends headers and body in one write)."""
    prepared = [delivery(first + i) for i in range(requests)]
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    items = iter(prepared)

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            while True:
                with lock:
                    item = next(items, None)
                if item is None:
                    return
                body, headers = item
                t = time.perf_counter()
                conn.request("POST", parts.path, body=body, headers=headers)
                answer = conn.getresponse()
                answer.read()
                took = time.perf_counter() - t
                with lock:
                    latencies.append(took)
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--amqp-url", default=os.environ.get("ASSETSYNC_AMQP_URL", DEFAULT_AMQP_URL)
    )
    args = parser.parse_args(argv)

    topology = Topology(prefix=f"assetsync-bench-{unique_suffix()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_AMQP_URL=args.amqp_url,
        ASSETSYNC_AMQP_PREFIX=topology.prefix,
        ASSETSYNC_WEBHOOK_SECRET=SECRET.decode(),
        ASSETSYNC_WEBHOOK_LISTEN="127.0.0.1:0",
    )
    with tempfile.TemporaryDirectory(prefix="webhooks-bench-") as tmp:
        child = Child(
            name="receiver",
            module=["producers.jira_webhooks"],
            env=env,
            log_path=Path(tmp) / "receiver.log",
        )
        try:
            child.start()
            found = wait_until(
                lambda: re.search(r"listening on (\S+)", child.log()),
                timeout=30,
                interval=0.05,
                what="the receiver to listen",
                alive=child.check_alive,
            )
            url = found.group(1)
            fire(url, 50, 4, first=10**6)  # warm up: connections, imports
            cpu_before = process_cpu_s(child.pid)
            elapsed, latencies, statuses = fire(url, args.requests, args.concurrency)
            cpu = process_cpu_s(child.pid) - cpu_before
            rss = child.peak_rss_mib()
            child.stop()
            queued = queue_depth(args.amqp_url, topology.login_queue) - 50
        finally:
            child.kill()
            delete_broker_objects(
                args.amqp_url,
                [q.name for q in topology.queues(retry=False)],
                [e.name for e in topology.exchanges()],
            )
    print(f"answers: {dict(sorted(statuses.items()))}; messages in the queue: {queued:,}")
    ms = [x * 1000 for x in latencies]
    print(
        f"{args.requests:,} signed deliveries, {args.concurrency} concurrent, in {elapsed:.2f} s:"
        f" {args.requests / elapsed:,.0f} requests/s; latency p50 {percentile(ms, 50):.1f} ms,"
        f" p99 {percentile(ms, 99):.1f} ms; receiver CPU {cpu:.1f} s, peak RSS {rss:.0f} MiB"
    )
    return 0 if statuses == {200: args.requests} and queued == args.requests else 1


if __name__ == "__main__":
    raise SystemExit(main())
