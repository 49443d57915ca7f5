"""Several replicas, duplicate deliveries, shutdown: nothing lost, nothing duplicated."""

from __future__ import annotations

import signal
import time

from lab.harness import login_body, user_assets, wait_for


def test_fifty_duplicate_events_across_two_workers_make_one_asset(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    first, second = start_worker(), start_worker()
    for _ in range(50):
        broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")

    wait_for(lambda: broker.count(broker.topology.login_queue) == 0, what="the queue to drain")
    wait_for(
        lambda: first.log().count("login of") + second.log().count("login of") == 50,
        what="all 50 events handled",
    )
    assets = user_assets(database)
    assert [a["jira_id"] for a in assets] == [user["key"]]
    assert first.log().count("login of") > 0 and second.log().count("login of") > 0
    assert broker.dead_letters() == []


def test_two_workers_creating_many_new_users_at_once_make_one_asset_each(
    start_worker, broker, jira, database
):
    users = [jira.add_user(f"user{i:03d}") for i in range(60)]
    start_worker(), start_worker()
    for user in users:
        for _ in range(3):  # each login arrives three times, on either replica
            broker.publish_raw(login_body(user_key=user["key"]), routing_key="user-logged-in")
    wait_for(lambda: len(user_assets(database)) == 60, what="60 assets")
    wait_for(lambda: broker.count(broker.topology.login_queue) == 0, what="the queue to drain")
    assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(u["key"] for u in users)


def test_sigterm_mid_stream_loses_nothing(start_worker, broker, jira, database):
    users = [jira.add_user(f"user{i:03d}") for i in range(150)]
    jira.set_delay(0.01)  # slow enough that SIGTERM lands mid-stream
    broker.declare()
    for user in users:
        broker.publish_raw(login_body(username=user["name"]), routing_key="user-logged-in")
    worker = start_worker()
    wait_for(lambda: len(user_assets(database)) >= 20, what="the first assets")

    stopped_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - stopped_at < 10
    done_before = len(user_assets(database))
    assert done_before < 150, "the test should stop the worker mid-stream"

    start_worker()
    wait_for(lambda: len(user_assets(database)) == 150, what="the rest after a restart")
    assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(u["key"] for u in users)
    assert broker.dead_letters() == []
