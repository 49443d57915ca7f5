"""Per-user messages RabbitMQ itself gives up on: a ``delivery-limit`` policy of 2 on the
per-user queue of a broker node of the test's own, and connections cut while batches
are in hand, so that RabbitMQ dead-lettered messages no worker code saw.

Seen before: 1,200 messages dead-lettered by the broker, 200 users never synced, the
run still ``processing`` 180 s later. Now the workers read each dead letter's copy
(``assetsync.user-sync.given-up``) and count its user failed with the reason, and the
run ends with every matched user done or failed, in bounded time. The database refuses
writes during the cuts (read-only), so that the batches in hand are held, not applied.
"""

from __future__ import annotations

import json
import re
import time

import psycopg
import pytest

from lab.faults import Lab, RabbitNode, own_rabbit_possible, rabbit_node
from lab.harness import request_bulk, run_summary, user_assets, wait_for, wait_run_finished

pytestmark = [
    pytest.mark.skipif(own_rabbit_possible() is not None, reason=str(own_rabbit_possible())),
    pytest.mark.timeout(300),
]
USERS = 1000


@pytest.fixture(scope="module")
def node():
    with rabbit_node() as found:
        yield found


@pytest.fixture
def lab(node: RabbitNode, infra, tmp_path):
    found = Lab(node=node, database_url=infra.database_url, workdir=tmp_path)
    yield found
    found.close()


def test_users_whose_messages_rabbitmq_gave_up_on_are_counted_failed_and_the_run_ends(
    lab: Lab, node: RabbitNode
):
    lab.jira.add_sample_users(USERS)
    workers = [lab.start_worker(), lab.start_worker()]
    queue = lab.topology.user_sync_queue
    node.ctl(
        "set_policy",
        "--apply-to",
        "queues",
        f"limit-{lab.topology.prefix}",
        f"^{re.escape(queue)}$",
        json.dumps({"delivery-limit": 2}),
    )
    run_id = request_bulk(lab.broker)
    wait_for(
        lambda: (run_summary(lab.database_url, run_id) or {}).get("done", 0) >= 100,
        timeout=60,
        what="the run to be processing",
    )
    # The store takes no writes meanwhile: each loop holds the batches in hand, unacked,
    # and each cut returns them; past two returns RabbitMQ dead-letters them itself.
    lab._set_read_only(True)
    for cut in range(1, 5):
        time.sleep(1.0)  # the batches are taken in again
        node.close_all_connections()
        wait_for(
            lambda: all(_consuming(w.log()) > cut for w in workers),  # noqa: B023
            timeout=30,
            what="both workers to consume again",
        )
    time.sleep(1.0)
    lab._set_read_only(False)
    healed = time.monotonic()

    run = wait_run_finished(lab.database_url, run_id, timeout=120)
    print(f"\ndelivery limit: run {run['state']} {time.monotonic() - healed:.1f} s after the cuts")

    assert run["state"] == "done", run["error"]
    assert run["matched"] == run["done"] == USERS
    gave_up = _failed(lab.database_url, run_id)
    print(f"{len(gave_up)} users given up on by RabbitMQ, counted failed")
    assert 0 < len(gave_up) == run["failed"]
    assert all("RabbitMQ dead-lettered its message (delivery_limit" in e for e in gave_up.values())
    assets = {a["jira_id"] for a in user_assets(lab.database_url)}
    assert len(assets) == run["created"] == USERS - run["failed"]
    assert not assets & set(gave_up)
    dead = lab.broker.dead_letters()  # every dead letter is still there for operators
    assert dead and all(h["x-death"][0]["reason"] == "delivery_limit" for _, h in dead)
    assert lab.broker.count(lab.topology.given_up_queue) == 0
    assert all(w.proc is not None and w.proc.poll() is None for w in workers)


def _consuming(log: str) -> int:
    """How many times a worker's per-user loop has started consuming."""
    return log.count(".user-sync, ")


def _failed(database: str, run_id: str) -> dict[str, str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT jira_id, error FROM sync_run_users WHERE run_id = %s AND outcome = 'failed'",
            [run_id],
        ).fetchall()
    return {r[0]: r[1] for r in rows}
