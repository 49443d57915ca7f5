"""The webhook receiver against clients that connect and then take their time: Jira's
signed deliveries and /healthz are still answered, and memory stays bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.slow_clients import SlowClients, rss_mib
from lab.harness import Broker, wait_for
from tests.webhook_support import ReceiverProcess, cloud_event, receiver_env

CAP = 200
BUDGET = 1024 * 1024  # four full-size (256 KiB) bodies


@pytest.fixture
def guarded(broker: Broker, tmp_path: Path, request) -> Iterator[ReceiverProcess]:
    """A receiver with small bounds, so that a few hundred slow clients exceed them
    (``@pytest.mark.parametrize("guarded", [seconds], indirect=True)`` sets its
    header and body timeouts; by default 10 s)."""
    timeout = str(getattr(request, "param", 10))
    process = ReceiverProcess(
        env=receiver_env(
            amqp_url=broker.url,
            topology=broker.topology,
            ASSETSYNC_WEBHOOK_MAX_CONNECTIONS=str(CAP),
            ASSETSYNC_WEBHOOK_BODY_BUDGET=str(BUDGET),
            ASSETSYNC_WEBHOOK_HEADER_TIMEOUT=timeout,
            ASSETSYNC_WEBHOOK_BODY_TIMEOUT=timeout,
        ),
        log_path=tmp_path / "receiver.log",
    )
    yield process.start()
    process.stop()


def address(receiver: ReceiverProcess) -> tuple[str, int]:
    parts = urlsplit(receiver.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def deliver(receiver: ReceiverProcess, i: int) -> int:
    return receiver.post(
        cloud_event("user_updated", account_id=f"acct-{i}"), delivery=f"d-{i}"
    ).status_code


def health(receiver: ReceiverProcess) -> dict:
    answer = httpx.get(f"{receiver.base}/healthz", timeout=10)
    assert answer.status_code == 200
    return answer.json()


def test_signed_deliveries_and_healthz_are_answered_while_slow_clients_crowd_the_receiver(
    guarded, broker
):
    host, port = address(guarded)
    assert deliver(guarded, -1) == 200  # warm: the publisher is connected
    before = rss_mib(guarded.proc.pid)

    # 300 send a request line and one header, 200 all but the last byte of a 256 KiB
    # body: more connections than the cap and more bytes than the budget, and each
    # one the receiver closes comes back.
    with SlowClients(host, port, idle=300, stalled=200, comeback=0.5) as slow:
        slow.wait_open(CAP, timeout=30)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: deliver(guarded, i), range(20)))
        probes = [health(guarded) for _ in range(3)]
        peak = rss_mib(guarded.proc.pid)
        assert slow.closed_by_server > 0

    assert answers == [200] * 20
    published = {
        json.loads(body)["account_id"] for body, _ in broker.drain(broker.topology.login_queue)
    }
    assert published == {f"acct-{i}" for i in range(-1, 20)}
    closed = probes[-1]["connections_closed"]
    assert closed.get("pushed_out", 0) > 0  # more clients than the cap
    # 200 stalled bodies would hold 50 MiB; the budget lets 1 MiB of them in.
    assert peak - before < 20, f"RSS grew from {before:.0f} to {peak:.0f} MiB"


@pytest.mark.parametrize("guarded", [2], indirect=True)
def test_a_client_that_does_not_finish_its_headers_or_body_in_time_is_disconnected(guarded):
    host, port = address(guarded)
    # Four stalled bodies fit the budget, the other two wait for room unread: each is
    # closed by its own deadline.
    with SlowClients(host, port, idle=5, stalled=6, comeback=60) as slow:
        slow.wait_open(11)
        started = time.monotonic()
        wait_for(lambda: slow.closed_by_server == 11, timeout=10, what="all eleven closed")
        took = time.monotonic() - started

    assert took < 5  # the timeouts are 2 s
    assert health(guarded)["connections_closed"] == {"header_timeout": 5, "body_timeout": 6}
