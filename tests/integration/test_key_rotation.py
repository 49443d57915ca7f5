"""Rotating the workers' signing key while a bulk run is in flight: no per-user message
is refused, pages published after the rotation carry the new key, and once the window
has passed a message signed with the old key is dead-lettered as such."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pika
import psycopg

from lab.harness import ROOT, request_bulk, run_summary, wait_for, wait_run_finished
from worker.signing import SIGNATURE_HEADER, key_id_of
from worker.store.keys import load_ring

USERS = 2000
WINDOW = 8.0


def test_a_rotation_during_a_run_loses_no_user_and_retires_the_old_key_after_the_window(
    start_worker, jira, broker, database
):
    jira.add_sample_users(USERS)
    env = {"ASSETSYNC_SIGNING_KEY_REFRESH": "1", "ASSETSYNC_JIRA_PAGE_SIZE": "100"}
    workers = [start_worker(env=env) for _ in range(2)]
    jira.set_delay(0.5, path_contains="/user")  # a scan of about ten seconds
    with psycopg.connect(database) as conn:
        old_ring = load_ring(conn)
    # A copy of every per-user message, to see which key signed it.
    spy = f"{broker.topology.prefix}.spy"
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        channel.queue_declare(spy, auto_delete=False)
        channel.queue_bind(spy, broker.topology.exchange, "user-sync")
    try:
        run_id = request_bulk(broker)
        wait_for(
            lambda: (run_summary(database, run_id) or {}).get("matched", 0) >= 200,
            timeout=60,
            what="the first pages fanned out",
        )
        rotated = subprocess.run(
            [sys.executable, "-m", "worker", "rotate-key", "--window", str(WINDOW)],
            env=workers[0].env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        rotated_at = time.monotonic()
        assert rotated.returncode == 0, rotated.stderr
        assert "signing key 2 is in use" in rotated.stdout
        assert run_summary(database, run_id)["state"] == "fanning_out"  # mid-run

        run = wait_run_finished(database, run_id)
        jira.set_delay(0)

        assert (run["state"], run["matched"], run["failed"]) == ("done", USERS, 0)
        signed_by = [key_id_of(str(h[SIGNATURE_HEADER])) for _, h in broker.drain(spy)]
        assert len(signed_by) >= USERS
        assert signed_by[0] == 1 and signed_by[-1] == 2
        assert set(signed_by) == {1, 2}

        # After the window a message signed with the old key is refused as such.
        body = json.dumps({"type": "user-sync", "schema_version": 1}).encode()
        time.sleep(max(0.0, rotated_at + WINDOW + 1.5 - time.monotonic()))
        broker.publish_raw(
            body, routing_key="user-sync", headers={SIGNATURE_HEADER: old_ring.sign(body)}
        )
        [(_, headers)] = wait_for(broker.dead_letters, timeout=20, what="the dead letter")
        assert "signed with signing key 1, retired since" in str(headers["x-assetsync-error"])
    finally:
        with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
            conn.channel().queue_delete(spy)
    for worker in workers:
        assert worker.terminate() == 0
