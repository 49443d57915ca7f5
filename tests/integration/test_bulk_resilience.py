"""Bulk runs under stress: a replica killed mid-run, logins during a run, old snapshots."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg

from lab.harness import (
    asset_of,
    counts,
    login_body,
    request_bulk,
    run_summary,
    user_assets,
    wait_for,
    wait_run_finished,
)
from schemas.messages import JiraUser
from worker.mapping import MappingRules, plan_asset
from worker.settings import DEFAULT_FIELD_MAP
from worker.store import Folders, Store, apply_plans, load_scheme

PAGE = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}


def test_killing_the_fanning_out_worker_mid_run_still_syncs_every_user_exactly_once(
    start_worker, broker, jira, database
):
    jira.add_sample_users(3000, inactive_every=9)
    jira.set_delay(0.03)  # a slow Jira keeps the scan going long enough to be cut
    workers = [start_worker(env=PAGE), start_worker(env=PAGE)]
    run_id = request_bulk(broker)
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["matched"] >= 600,
        what="the scan to be under way",
    )
    [victim] = [w for w in workers if "scanning Jira" in w.log()]
    victim.kill()  # SIGKILL: no goodbye; its unacked messages go back to the queue
    assert run_summary(database, run_id)["state"] == "fanning_out"

    run = wait_run_finished(database, run_id, timeout=180)
    assert run["state"] == "done"
    assert counts(run) == {
        "matched": 3000,
        "created": 3000,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
        "missing": 0,
        "failed": 0,
    }
    keys = [a["jira_id"] for a in user_assets(database)]
    assert len(keys) == len(set(keys)) == 3000
    [survivor] = [w for w in workers if w is not victim]
    assert "(resuming)" in survivor.log()  # from the checkpoint, not from scratch
    assert jira.request_count("/user/list") < 30 + 10
    assert broker.dead_letters() == []


def test_a_login_during_a_big_run_is_not_queued_behind_it(start_worker, broker, jira, database):
    jira.add_sample_users(6000, groups={"staff": 1})
    late = jira.add_user("late.comer", display_name="Late Comer")  # not in group staff
    start_worker(env={"ASSETSYNC_BATCH_SIZE": "20"})
    run_id = request_bulk(broker, groups=("staff",))
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["done"] >= 50,
        what="the run to be processing users",
    )

    broker.publish_raw(login_body(username="late.comer"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, late["key"]), what="the login's asset")
    run = run_summary(database, run_id)
    assert run["state"] != "done", "the login should have been handled while the run went on"
    assert wait_run_finished(database, run_id)["state"] == "done"


def test_an_older_snapshot_never_overwrites_newer_jira_data(database):
    store = Store(url=database)
    store.open()
    try:
        with store.transaction() as conn:
            scheme = load_scheme(
                conn,
                asset_type="Employee",
                user_field="User",
                field_map=DEFAULT_FIELD_MAP,
                kinds={
                    "name": "text",
                    "displayName": "text",
                    "emailAddress": "text",
                    "active": "boolean",
                },
            )
        folders = Folders(store)
        rules = MappingRules(
            field_map=DEFAULT_FIELD_MAP, user_field="User", folder=("Employees",), alphabetical=True
        )
        now = datetime.now(UTC)
        newer = JiraUser(jira_id="JIRAUSER1", name="jdoe", display_name="Jane New")
        older = JiraUser(jira_id="JIRAUSER1", name="jdoe", display_name="Jane Old")
        with store.transaction() as conn:  # a login fetched Jira now
            apply_plans(conn, scheme, [plan_asset(newer, rules, seen_at=now)], folders=folders)
        with store.transaction() as conn:  # a bulk page fetched a minute earlier arrives
            change = apply_plans(
                conn,
                scheme,
                [plan_asset(older, rules, seen_at=now - timedelta(minutes=1))],
                folders=folders,
            )
        assert change["JIRAUSER1"].outcome == "unchanged"
        assert asset_of(database, "JIRAUSER1")["fields"]["Full name"] == "Jane New"
    finally:
        store.close()


def test_two_batches_racing_to_create_the_same_users_make_one_asset_each(database):
    """Two replicas' transactions create the same new users at once: the unique index
    makes one wait for the other, and the loser updates the winner's assets."""
    import threading

    stores = [Store(url=database), Store(url=database)]
    for s in stores:
        s.open()
    try:
        with stores[0].transaction() as conn:
            scheme = load_scheme(
                conn,
                asset_type="Employee",
                user_field="User",
                field_map={"name": "Username"},
                kinds={"name": "text"},
            )
        rules = MappingRules(
            field_map={"name": "Username"},
            user_field="User",
            folder=("Employees",),
            alphabetical=False,
        )
        now = datetime.now(UTC)
        plans = [
            plan_asset(JiraUser(jira_id=f"K{i}", name=f"u{i}"), rules, seen_at=now)
            for i in range(200)
        ]
        barrier = threading.Barrier(2)
        outcomes: list[dict] = []

        def create(store: Store) -> None:
            with store.transaction() as conn:
                barrier.wait()
                outcomes.append(apply_plans(conn, scheme, plans, folders=Folders(store)))

        threads = [threading.Thread(target=create, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 200
        assert len(user_assets(database)) == 200
        created = sum(c.outcome == "created" for o in outcomes for c in o.values())
        assert created == 200  # each user created once, by one of the two
    finally:
        for s in stores:
            s.close()


def test_a_bulk_request_delivered_twice_is_one_run_with_exact_counts(
    start_worker, broker, jira, database
):
    import uuid

    from schemas.messages import BulkSyncRequested, to_body, utc_now

    jira.add_sample_users(1500)
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=utc_now(), requested_by="tests"
    )
    start_worker(env=PAGE), start_worker(env=PAGE)
    for _ in range(2):
        broker.publish_raw(to_body(request), routing_key="bulk-sync-requested")
    run = wait_run_finished(database, str(request.request_id))
    assert counts(run) == {
        "matched": 1500,
        "created": 1500,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
        "missing": 0,
        "failed": 0,
    }
    wait_for(lambda: broker.count(broker.topology.bulk_queue) == 0, what="both copies taken")
    assert len(user_assets(database)) == 1500
    assert run_summary(database, str(request.request_id))["matched"] == 1500
    assert broker.dead_letters() == []


def test_a_request_whose_run_lock_is_still_held_waits_for_it(start_worker, broker, jira, database):
    """A replica killed mid-scan: RabbitMQ redelivers its request at once, PostgreSQL
    may free its lock a moment later. The request must wait, not be dropped."""
    import uuid

    from schemas.messages import BulkSyncRequested, to_body, utc_now
    from worker.store.locks import RUN_LOCKS as RUN_LOCK_SPACE

    jira.add_sample_users(120)
    request = BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=utc_now(), requested_by="tests"
    )
    start_worker(env=PAGE)
    with psycopg.connect(database, autocommit=True) as dying_replica:
        dying_replica.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))", [RUN_LOCK_SPACE, str(request.request_id)]
        )
        broker.publish_raw(to_body(request), routing_key="bulk-sync-requested")
        wait_for(lambda: broker.count(broker.topology.bulk_queue) == 0, what="the request taken")
        time.sleep(1.0)
        assert run_summary(database, str(request.request_id)) is None  # not started: waiting
    # The lock goes with the connection, as with a replica's dead backend.
    run = wait_run_finished(database, str(request.request_id), timeout=30)
    assert run["state"] == "done"
    assert counts(run)["matched"] == counts(run)["created"] == 120
    assert broker.dead_letters() == []


def test_a_dead_replica_host_loses_its_database_connection_within_the_lock_wait(database):
    """Run locks are locks held by the connection: PostgreSQL must notice a vanished replica host
    (no FIN, no RST) well before a redelivered request stops waiting for the lock."""
    from worker.fan_out import RUN_LOCK_WAIT

    store = Store(url=database, max_size=1)
    store.open()
    try:
        with store.connection() as conn:
            idle, interval, count = (
                int(conn.execute(f"SHOW {name}").fetchone()[0])
                for name in (
                    "tcp_keepalives_idle",
                    "tcp_keepalives_interval",
                    "tcp_keepalives_count",
                )
            )
    finally:
        store.close()
    assert idle + interval * count < RUN_LOCK_WAIT
