"""An attacker, or a broken neighbour, on the real broker and database: no forged asset,
no crash loop, no forged log line, and a wrong deployment stops with one line."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from lab.harness import (
    asset_of,
    login_body,
    request_bulk,
    signed,
    wait_for,
    wait_run_finished,
)
from lab.proxy import Proxy
from schemas.topology import ERROR_HEADER
from worker.signing import SIGNATURE_HEADER, Signer


def forged_sync(run_id: str, **user: object) -> bytes:
    return json.dumps(
        {
            "type": "user-sync",
            "schema_version": 1,
            "run_id": run_id,
            "fetched_at": "2099-01-01T00:00:00Z",
            "user": {"active": False, **user},
        }
    ).encode()


@pytest.mark.parametrize("signature", ["none", "wrong key"])
def test_a_forged_user_sync_changes_no_asset(start_worker, broker, jira, database, signature):
    """Seen: a bulk request for a prefix nobody has opened a run; a user-sync for it
    then rewrote another user's asset as "Mallory Owned", inactive, dated 2099."""
    victim = jira.add_user("victim", display_name="Victor Im", email="victim@example.com")
    start_worker()
    broker.publish_raw(login_body(username="victim"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, victim["key"]), what="the victim's asset")
    run_id = request_bulk(broker, prefix="zzzz-nobody")
    wait_run_finished(database, run_id)

    body = forged_sync(
        run_id, jira_id=victim["key"], name="victim", display_name="Mallory Owned",
        email_address="attacker@evil.example",
    )  # fmt: skip
    headers = None
    if signature == "wrong key":
        headers = {SIGNATURE_HEADER: Signer.fixed(b"sixteen-byte-key-guess").sign(body)}
    broker.publish_raw(body, routing_key="user-sync", headers=headers)

    dead = wait_for(broker.dead_letters, what="the forged message dead-lettered")
    expected = "unsigned" if signature == "none" else "bad signature"
    assert expected in dead[0][1][ERROR_HEADER]
    asset = asset_of(database, victim["key"])
    assert asset["fields"]["Full name"] == "Victor Im"
    assert asset["fields"]["Active"] is True
    # A real login afterwards still writes Jira's data (no 2099 snapshot "wins").
    jira.update_user("victim", display_name="Victor Renamed")
    broker.publish_raw(login_body(username="victim"), routing_key="user-logged-in")
    wait_for(
        lambda: asset_of(database, victim["key"])["fields"]["Full name"] == "Victor Renamed",
        what="the login's update",
    )


def test_a_signed_snapshot_is_applied_only_for_a_user_its_run_matched(
    start_worker, broker, jira, database
):
    """Even a message signed with the workers' key (a leaked key, a replayed message)
    writes only a user its run matched and has not settled, while the run is open."""
    victim = jira.add_user("victim", display_name="Victor Im")
    start_worker()
    run_id = request_bulk(broker, prefix="zzzz-nobody")
    wait_run_finished(database, run_id)
    body = forged_sync(run_id, jira_id=victim["key"], name="victim", display_name="Mallory")
    broker.publish_raw(body, routing_key="user-sync", headers=signed(database, body))

    dead = wait_for(broker.dead_letters, what="the message dead-lettered")
    assert f"run {run_id} is not open or did not match user" in dead[0][1][ERROR_HEADER]
    assert asset_of(database, victim["key"]) is None


def test_a_snapshot_dated_in_the_future_counts_as_received_now(
    start_worker, broker, jira, database
):
    """A run matched the user and is open; its snapshot claims 2099. It is written, but
    as of its arrival, so a later login still wins."""
    user = jira.add_user("jdoe", display_name="Jane Doe")
    run_id = uuid.uuid4()
    with psycopg.connect(database) as conn:  # what a fan-out records before publishing
        conn.execute(
            "INSERT INTO sync_runs (id, requested_by, requested_at, state)"
            " VALUES (%s, 'tests', now(), 'processing')",
            [run_id],
        )
        conn.execute(
            "INSERT INTO sync_run_users (run_id, jira_id) VALUES (%s, %s)", [run_id, user["key"]]
        )
    start_worker()
    body = forged_sync(str(run_id), jira_id=user["key"], name="jdoe", display_name="Jane Snap")
    broker.publish_raw(body, routing_key="user-sync", headers=signed(database, body))
    wait_for(lambda: asset_of(database, user["key"]), what="the snapshot's asset")
    with psycopg.connect(database) as conn:
        (seen,) = conn.execute("SELECT max(jira_seen_at) FROM assets").fetchone()
    assert seen <= datetime.now(UTC)

    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(
        lambda: asset_of(database, user["key"])["fields"]["Full name"] == "Jane Doe",
        what="the login's newer data",
    )


def test_a_message_id_cannot_forge_a_log_line(start_worker, broker, jira, database):
    worker = start_worker()
    broker.publish_raw(
        b"{nope",
        routing_key="user-logged-in",
        message_id="x\n2026-01-01 00:00:00,000 CRITICAL worker: FORGED",
    )
    wait_for(broker.dead_letters, what="the dead letter")
    assert not any(line.startswith("2026-01-01") for line in worker.log().splitlines())
    assert "FORGED" in worker.log()  # still there, quoted, on the real line


def test_a_bulk_request_the_database_could_not_store_is_refused_once(
    start_worker, broker, jira, database
):
    """Seen: a NUL in requested_by looped 21 times in 0.1 s with 1,386 traceback lines."""
    worker = start_worker()
    body = json.dumps(
        {
            "type": "bulk-sync-requested",
            "schema_version": 1,
            "request_id": str(uuid.uuid4()),
            "requested_at": "2026-11-29T10:00:00Z",
            "requested_by": "eve\u0000",
        }
    ).encode()
    broker.publish_raw(body, routing_key="bulk-sync-requested")
    dead = wait_for(broker.dead_letters, what="the dead letter")
    time.sleep(0.5)
    assert "NUL character" in dead[0][1][ERROR_HEADER]
    assert worker.log().count("dead-lettering") == 1
    assert "Traceback" not in worker.log()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM sync_runs").fetchone()[0] == 0


def test_a_wrong_amqp_password_stops_the_worker_with_one_line(start_worker, infra):
    """Seen: retried forever."""
    url = infra.amqp_url.replace("guest:guest@", "guest:wrong@")
    worker = start_worker(env={"ASSETSYNC_AMQP_URL": url}, wait=False)
    assert worker.wait(timeout=30) == 78
    log = worker.log()
    assert "RabbitMQ refused us (ACCESS_REFUSED" in log
    assert "ASSETSYNC_AMQP_URL" in log
    assert "wrong" not in log  # the password itself is never shown
    assert "Traceback" not in log


def test_a_database_that_comes_up_after_the_worker_is_waited_for(
    start_worker, broker, jira, database
):
    """Seen: the second attempt failed with PoolClosed and the worker exited 1."""
    params = psycopg.conninfo.conninfo_to_dict(database)
    with Proxy((str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))) as up:
        port = up.port
    late = psycopg.conninfo.make_conninfo(database, host="127.0.0.1", port=str(port))
    worker = start_worker(
        env={"ASSETSYNC_DATABASE_URL": late, "ASSETSYNC_DATABASE_TIMEOUT": "1"}, wait=False
    )
    wait_for(lambda: "not reachable yet" in worker.log(), timeout=30, what="a failed attempt")
    time.sleep(1.5)  # and another
    assert worker.proc.poll() is None
    with Proxy(
        (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)), port=port
    ):
        wait_for(lambda: "consuming" in worker.log(), timeout=60, what="the worker to start")
    assert "PoolClosed" not in worker.log()


def test_a_user_jira_describes_badly_fails_alone_in_a_bulk_run(
    start_worker, broker, jira, database
):
    """Seen: a user JSON without what we need was an "internal error" that failed the
    whole scan. Now that user is counted failed, with the reason; everyone else syncs."""
    from lab.harness import counts, run_summary

    jira.add_sample_users(30)
    odd = jira.add_user("odd.one", display_name="x" * 5000)  # beyond any sane display name
    start_worker(env={"ASSETSYNC_JIRA_PAGE_SIZE": "10"})
    run = wait_run_finished(database, request_bulk(broker))

    assert run["state"] == "done"
    assert counts(run)["failed"] == 1
    assert run["matched"] == run["done"] == 31
    assert asset_of(database, odd["key"]) is None
    with psycopg.connect(database) as conn:
        (error,) = conn.execute(
            "SELECT error FROM sync_run_users WHERE run_id = %s AND outcome = 'failed'",
            [run["run_id"]],
        ).fetchone()
    assert "display_name" in error and odd["key"] in error
    assert run_summary(database, str(run["run_id"]))["missing"] == 0
