"""``python -m bench.slow_clients [--step IDLE:STALLED ...] [--seconds 20] [--checkout DIR]``:
how many idle or stalled connections the webhook receiver holds off while Jira's
signed deliveries keep getting answered.

Starts ``python -m producers.jira_webhooks`` (from ``--checkout``, e.g. a worktree of
an older version, to measure that one; default this tree) against the local RabbitMQ
with queues of its own. Then, for each step, for ``--seconds``:

- IDLE clients each open a connection, send a request line and one header, and wait;
- STALLED clients each send a whole request's headers declaring a 256 KiB body and
  all of it but the last byte, and wait;
- each one the receiver closes comes back 0.1 s later (the attack keeps its numbers);
- a steady stream of signed ``user_updated`` deliveries, ``--rate`` a second, each on a
  new connection as Jira opens them, and ``GET /healthz`` once a second.

Prints per step: the attack's connections open at the end, how often the receiver
closed one, deliveries answered 2xx within 1 s (of all sent), their latency, /healthz
answers, and the receiver's resident memory at the end of the step and its peak.
The load generator runs on the same 2 cores as the receiver and RabbitMQ.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import re
import resource
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.infra import (
    DEFAULT_AMQP_URL,
    ROOT,
    Child,
    delete_broker_objects,
    peak_rss_mib,
    percentile,
    rss_mib,
    unique_suffix,
    wait_until,
)
from schemas.topology import Topology

SECRET = b"bench-secret"
STALLED_BODY = 256 * 1024
PATH = "/webhooks/jira"


# -- the attack -----------------------------------------------------------------------------


class SlowClients:
    """IDLE and STALLED clients against ``host:port``, in a process of their own (so
    that they do not share an interpreter with whoever measures); each connection the
    server closes is opened again ``comeback`` s later.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        idle: int = 0,
        stalled: int = 0,
        body: int = STALLED_BODY,
        comeback: float = 0.1,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._open = context.Value("i", 0)
        self._closed = context.Value("i", 0)
        self._stop = context.Event()
        self._process = context.Process(
            target=_attack,
            args=(host, port, idle, stalled, body, comeback, self._open, self._closed, self._stop),
            daemon=True,
        )

    @property
    def open_now(self) -> int:
        return int(self._open.value)

    @property
    def closed_by_server(self) -> int:
        return int(self._closed.value)

    def __enter__(self) -> SlowClients:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(2)  # clients waiting to come back are not waited for
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)

    def wait_open(self, at_least: int, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.open_now >= at_least,
            timeout=timeout,
            interval=0.05,
            what=f"{at_least} slow connections open (now {self.open_now})",
        )


def _attack(
    host: str,
    port: int,
    idle: int,
    stalled: int,
    body: int,
    comeback: float,
    open_now: Any,
    closed: Any,
    stop: Any,
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    head = b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: receiver\r\n"
    upload = head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % body
    upload += b" " * (body - 1)

    async def client(sent: bytes) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            except (OSError, TimeoutError):
                await asyncio.sleep(comeback)
                continue
            with open_now.get_lock():
                open_now.value += 1
            try:
                writer.write(sent)
                with contextlib.suppress(OSError):
                    await writer.drain()
                while not stop.is_set():
                    try:
                        if not await asyncio.wait_for(reader.read(4096), 0.5):
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                else:
                    continue
                with closed.get_lock():
                    closed.value += 1
            finally:
                with open_now.get_lock():
                    open_now.value -= 1
                writer.close()
            await asyncio.sleep(comeback)

    async def run() -> None:
        await asyncio.gather(
            *[client(head) for _ in range(idle)], *[client(upload) for _ in range(stalled)]
        )

    asyncio.run(run())


# -- what Jira sees -------------------------------------------------------------------------


def delivery(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "timestamp": 1_700_000_000_000 + i,
            "webhookEvent": "user_updated",
            "user": {"accountId": f"5b10ac8d82e05b22cc{i:06x}", "accountType": "atlassian"},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
        "X-Atlassian-Webhook-Identifier": f"slow-bench-{i}",
    }
    return body, headers


@dataclass
class Answers:
    """Each answer's status (or the error instead) and how long it took."""

    got: list[tuple[str, float]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.got)

    @property
    def statuses(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for status, _ in self.got:
            found[status] = found.get(status, 0) + 1
        return dict(sorted(found.items()))

    def ok_within(self, seconds: float) -> int:
        return sum(1 for status, took in self.got if status.startswith("2") and took <= seconds)


def ask(host: str, port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return str(answer.status)
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def steady_deliveries(
    host: str, port: int, *, rate: float, seconds: float, first: int
) -> tuple[Answers, Answers]:
    """Signed deliveries at ``rate``/s and /healthz once a second, for ``seconds``."""
    deliveries, health = Answers(), Answers()
    lock = threading.Lock()

    def one(i: int) -> None:
        body, headers = delivery(i)
        t = time.perf_counter()
        status = ask(host, port, "POST", PATH, body, headers)
        with lock:
            deliveries.got.append((status, time.perf_counter() - t))

    def probe() -> None:
        t = time.perf_counter()
        status = ask(host, port, "GET", "/healthz", b"", {})
        with lock:
            health.got.append((status, time.perf_counter() - t))

    threads: list[threading.Thread] = []
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        if n < elapsed * rate:
            threads.append(threading.Thread(target=one, args=(first + n,)))
            threads[-1].start()
            if n % max(1, round(rate)) == 0:
                threads.append(threading.Thread(target=probe))
                threads[-1].start()
            n += 1
        time.sleep(0.01)
    for thread in threads:
        thread.join(10)
    return deliveries, health


# -- the run --------------------------------------------------------------------------------


def step(text: str) -> tuple[int, int]:
    idle, _, stalled = text.partition(":")
    return int(idle), int(stalled or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__)
    parser.add_argument(
        "--step",
        type=step,
        action="append",
        metavar="IDLE:STALLED",
        help="slow clients of each kind in one step (repeatable; default 1100:0 0:600 1100:600"
        " 4000:1000)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per step")
    parser.add_argument("--rate", type=float, default=5.0, help="signed deliveries a second")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the receiver's source tree")
    parser.add_argument(
        "--amqp-url", default=os.environ.get("ASSETSYNC_AMQP_URL", DEFAULT_AMQP_URL)
    )
    args = parser.parse_args(argv)
    steps = args.step or [(1100, 0), (0, 600), (1100, 600), (4000, 1000)]

    topology = Topology(prefix=f"assetsync-bench-{unique_suffix()}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_AMQP_URL=args.amqp_url,
        ASSETSYNC_AMQP_PREFIX=topology.prefix,
        ASSETSYNC_WEBHOOK_SECRET=SECRET.decode(),
        ASSETSYNC_WEBHOOK_LISTEN="127.0.0.1:0",
        PYTHONPATH=str(args.checkout.resolve()),
    )
    print(f"receiver from {args.checkout.resolve()}; {args.rate:g} signed deliveries/s")
    failed = False
    with tempfile.TemporaryDirectory(prefix="slow-clients-bench-") as tmp:
        child = Child(
            name="receiver",
            module=["producers.jira_webhooks"],
            env=env,
            log_path=Path(tmp) / "receiver.log",
            cwd=args.checkout.resolve(),
        )
        try:
            child.start()
            found = wait_until(
                lambda: re.search(r"listening on http://([\d.]+):(\d+)", child.log()),
                timeout=30,
                interval=0.05,
                what="the receiver to listen",
                alive=child.check_alive,
            )
            host, port = found.group(1), int(found.group(2))
            steady_deliveries(host, port, rate=10, seconds=1, first=10**6)  # warm up
            print(f"idle at start: {rss_mib(child.pid):.0f} MiB")
            for i, (idle, stalled) in enumerate(steps):
                with SlowClients(host, port, idle=idle, stalled=stalled) as attack:
                    with contextlib.suppress(TimeoutError):
                        attack.wait_open(idle + stalled, timeout=30)
                    deliveries, health = steady_deliveries(
                        host, port, rate=args.rate, seconds=args.seconds, first=i * 100_000
                    )
                    held, closed = attack.open_now, attack.closed_by_server
                    rss = rss_mib(child.pid)
                child.check_alive()
                ok = deliveries.ok_within(1.0)
                ms = [took * 1000 for _, took in deliveries.got]
                failed |= ok < deliveries.sent
                print(
                    f"{idle:,} idle + {stalled:,} stalled: {held:,} open at the end,"
                    f" {closed:,} closed by the receiver; signed deliveries 2xx within 1 s:"
                    f" {ok}/{deliveries.sent} {deliveries.statuses},"
                    f" p50 {percentile(ms, 50):.0f} ms, max {max(ms):.0f} ms;"
                    f" /healthz {health.statuses};"
                    f" RSS {rss:.0f} MiB (peak {peak_rss_mib(child.pid):.0f} MiB)",
                    flush=True,
                )
                time.sleep(2)  # let the receiver settle between steps
        finally:
            child.kill()
            delete_broker_objects(
                args.amqp_url,
                [q.name for q in topology.queues(retry=False)],
                [e.name for e in topology.exchanges()],
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
