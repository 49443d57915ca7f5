"""Faults that used to be settled the wrong way, each against the real broker and database:
a broker connection cut while a bulk request fans out, a health file that cannot be
written, a give-up that cannot be recorded, a publisher whose confirms never come."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import pytest

from lab.harness import (
    asset_of,
    counts,
    login_body,
    request_bulk,
    run_summary,
    signed,
    user_assets,
    wait_for,
    wait_run_finished,
)
from lab.proxy import Proxy
from schemas.messages import utc_now
from schemas.topology import ERROR_HEADER
from worker.broker import ConfirmPublisher, Outgoing, connect
from worker.errors import BrokerLost

PAGE = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}


@pytest.fixture
def amqp_proxy(infra):
    parts = urlsplit(infra.amqp_url)
    with Proxy((parts.hostname, parts.port or 5672)) as proxy:
        yield proxy


def test_a_broker_connection_cut_while_fanning_out_leaves_the_run_to_resume(
    start_worker, broker, jira, database, amqp_proxy, infra
):
    """Seen: run "failed" with "internal error: ConnectionForced", never resumed."""
    jira.add_sample_users(2000)
    jira.set_delay(0.05)  # pages arrive slowly: the scan is still going when the cut comes
    worker = start_worker(env={**PAGE, "ASSETSYNC_AMQP_URL": amqp_proxy.url(infra.amqp_url)})
    run_id = request_bulk(broker)
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["matched"] >= 300,
        what="the scan to be under way",
    )
    assert amqp_proxy.cut() >= 3  # the worker's three loops
    assert run_summary(database, run_id)["state"] == "fanning_out"

    run = wait_run_finished(database, run_id, timeout=120)
    assert run["state"] == "done", run["error"]
    assert counts(run)["matched"] == run["done"] == run["created"] == 2000
    assert len({a["jira_id"] for a in user_assets(database)}) == len(user_assets(database)) == 2000
    assert broker.dead_letters() == []
    assert worker.proc.poll() is None
    assert "(resuming)" in worker.log()


def test_a_health_file_that_cannot_be_written_is_not_taken_for_a_lost_broker(
    start_worker, broker, jira, database, tmp_path
):
    user = jira.add_user("jdoe")
    worker = start_worker(env={"ASSETSYNC_HEALTH_FILE": str(tmp_path / "missing-dir" / "alive")})
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    time.sleep(6)  # past the touch interval, more than once
    log = worker.log()
    assert "cannot touch the health file" in log
    assert log.count("cannot touch the health file") == 1
    assert "reconnecting" not in log
    assert worker.proc.poll() is None


def test_a_user_sync_of_a_run_that_does_not_exist_is_dead_lettered_once_with_its_reason(
    start_worker, broker, jira, database
):
    """Seen: a user-sync of an unknown run failed to record its failure (foreign key),
    was requeued on the spot 21 times in 0.1 s, then dead-lettered without a reason."""
    worker = start_worker()
    body = json.dumps(
        {
            "type": "user-sync",
            "schema_version": 1,
            "run_id": str(uuid.uuid4()),
            "fetched_at": utc_now().isoformat(),
            "user": {"jira_id": "JIRAUSER10000", "name": "jdoe"},
        }
    ).encode()
    broker.publish_raw(body, routing_key="user-sync", headers=signed(database, body))
    wait_for(lambda: broker.count(broker.topology.dead_queue), what="the dead letter")
    time.sleep(1.0)
    dead = broker.dead_letters()
    assert len(dead) == 1
    assert "is not open or did not match user 'JIRAUSER10000'" in dead[0][1][ERROR_HEADER]
    assert worker.log().count("dead-lettering") == 1
    assert user_assets(database) == []
    assert worker.proc.poll() is None


def test_a_publisher_whose_confirms_never_come_gives_up_and_stays_given_up(
    broker, infra, amqp_proxy
):
    """Seen: after a confirm timeout the next publish waited on the stale tags."""
    broker.declare()
    with connect(amqp_proxy.url(infra.amqp_url), heartbeat=0) as conn:
        publisher = ConfirmPublisher(conn, timeout=1.0)
        message = Outgoing(body=b"{}", exchange=broker.topology.exchange, routing_key="user-sync")
        publisher.publish([message])
        amqp_proxy.go_silent()
        with pytest.raises(BrokerLost, match="did not confirm 1 messages"):
            publisher.publish([message])
        started = time.monotonic()
        with pytest.raises(BrokerLost):
            publisher.publish([message])
        assert time.monotonic() - started < 0.5  # no second wait on what will never come
