"""Retries against the real broker: each one waits in exactly one delay queue and comes
back exactly once, also on a broker that still holds the topology of versions before
0.2 (whose every retry binding matched every message). Counted, never read off the
bindings: a test of the bindings' arguments passed while every retry was copied."""

from __future__ import annotations

import pika
import pytest

from lab.harness import asset_of, login_body, retry_queues, wait_for, wait_quiet
from schemas.topology import (
    ATTEMPT_HEADER,
    DELAY_HEADER,
    ERROR_HEADER,
    LEGACY_RETRY_HEADER,
    Topology,
)
from tests.policies import broker_policy

LOOKUP = "/rest/api/2/user?username="


@pytest.mark.parametrize("failures", [1, 2])
def test_a_login_that_failed_n_times_is_looked_up_n_plus_one_times_and_leaves_no_copy(
    start_worker, broker, jira, database, failures
):
    user = jira.add_user("jdoe")
    jira.fail_next(failures, status=503, path_contains=LOOKUP)
    worker = start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")

    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    wait_quiet(broker, retry_queues(broker.topology), quiet=1.5)
    assert jira.request_count(LOOKUP + "jdoe") == failures + 1
    assert broker.dead_letters() == []
    assert worker.proc.poll() is None


def test_retries_are_bounded_then_the_message_is_dead_lettered_once(
    start_worker, broker, jira, database
):
    jira.add_user("jdoe")
    jira.fail_next(100, status=503, path_contains="/user")
    worker = start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: broker.count(broker.topology.dead_queue), what="the dead letter")
    wait_quiet(broker, retry_queues(broker.topology), quiet=1.5)

    dead = broker.dead_letters()
    assert len(dead) == 1
    # Two delays configured: three attempts in all, then the dead queue.
    assert dead[0][1][ERROR_HEADER] == (
        "gave up after 3 attempts: Jira answered 503 to /rest/api/2/user"
    )
    assert jira.request_count(LOOKUP + "jdoe") == 3
    assert asset_of(database, "JIRAUSER10000") is None
    assert worker.proc.poll() is None


@pytest.fixture
def topology() -> Topology:
    # A long second delay, so that copies are still waiting when the new worker starts.
    import uuid

    return Topology(prefix=f"assetsync-test-{uuid.uuid4().hex[:10]}", retry_delays=(0.3, 4.0))


def declare_topology_before_0_2(broker) -> None:
    """What a worker before 0.2 left on the broker: the same queues, and retry bindings
    from exchange <prefix>.retry on an x- header, which RabbitMQ does not match on."""
    t: Topology = broker.topology
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        for ex in t.exchanges():
            if ex.name != t.delay_exchange:
                channel.exchange_declare(ex.name, ex.type, durable=True, arguments=ex.arguments)
        channel.exchange_declare(t.legacy_retry_exchange, "headers", durable=True)
        for q in t.queues():
            channel.queue_declare(q.name, durable=True, arguments=q.arguments)
            for b in q.bindings:
                if b.exchange != t.delay_exchange:
                    channel.queue_bind(q.name, b.exchange, b.routing_key, b.arguments)
        for queue, binding in t.legacy_retry_bindings(t.retry_delays):
            channel.queue_bind(queue, binding.exchange, "", binding.arguments)


def retry_as_before_0_2(broker, body: bytes, delay_ms: int) -> None:
    """A retry as a worker before 0.2 published it (an old replica mid-upgrade)."""
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            broker.topology.legacy_retry_exchange,
            "user-logged-in",
            body,
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                headers={ATTEMPT_HEADER: 2, LEGACY_RETRY_HEADER: str(delay_ms)},
            ),
        )


def test_a_new_worker_on_an_old_topology_stops_the_copies_and_loses_no_waiting_retry(
    start_worker, broker, jira, database
):
    t: Topology = broker.topology
    first, second, third = (jira.add_user(n) for n in ("first.user", "second.user", "third.user"))
    declare_topology_before_0_2(broker)
    retry_as_before_0_2(broker, login_body(username="first.user"), 4000)
    # The old defect, for the record: one retry, a copy in every delay queue.
    assert [broker.count(q) for q in retry_queues(t)] == [1, 1]

    worker = start_worker()
    wait_for(lambda: asset_of(database, first["key"]), what="the first user's asset")
    wait_quiet(broker, retry_queues(t), quiet=5.0)
    # Both copies that were waiting came back and were synced: nothing lost.
    assert jira.request_count(LOOKUP + "first.user") == 2

    # An old replica still running during the rollout: its retry now arrives once.
    retry_as_before_0_2(broker, login_body(username="second.user"), 4000)
    wait_for(lambda: asset_of(database, second["key"]), what="the second user's asset")
    wait_quiet(broker, retry_queues(t), quiet=5.0)
    assert jira.request_count(LOOKUP + "second.user") == 1

    # The new worker's own retries: one failure, one more look-up.
    jira.fail_next(1, status=503, path_contains=LOOKUP + "third.user")
    broker.publish_raw(login_body(username="third.user"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, third["key"]), what="the third user's asset")
    wait_quiet(broker, retry_queues(t), quiet=5.0)
    assert jira.request_count(LOOKUP + "third.user") == 2
    assert broker.dead_letters() == []
    assert worker.proc.poll() is None

    # A second start (every replica declares at start) changes nothing of the above.
    start_worker()
    retry_as_before_0_2(broker, login_body(username="second.user"), 300)
    wait_for(lambda: jira.request_count(LOOKUP + "second.user") == 2, what="one more look-up")
    wait_quiet(broker, retry_queues(t), quiet=5.0)
    assert jira.request_count(LOOKUP + "second.user") == 2


def test_a_retry_whose_delay_queue_lost_its_binding_is_routed_not_dropped(
    start_worker, broker, jira, database
):
    """Retries are published mandatory: one that no binding takes comes back; the worker
    declares its topology again and sends it once more, rather than having it confirmed
    and dropped."""
    t: Topology = broker.topology
    user = jira.add_user("jdoe")
    worker = start_worker()
    # Every loop declares the topology as it starts: let all three have done so.
    wait_for(lambda: worker.log().count("consuming") == 3, what="the three loops")
    first = t.retry_delays[0]
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        conn.channel().queue_unbind(
            t.retry_queue(first),
            t.delay_exchange,
            routing_key="",
            arguments={"x-match": "all", DELAY_HEADER: t.retry_key(first)},
        )
    jira.fail_next(1, status=503, path_contains=LOOKUP)
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")

    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    wait_quiet(broker, retry_queues(t), quiet=1.5)
    assert jira.request_count(LOOKUP + "jdoe") == 2  # the retry came back once
    assert broker.dead_letters() == []
    assert "routed 1 of 1 messages to no queue" in worker.log()
    assert worker.proc.poll() is None


def test_a_retry_the_broker_refuses_is_given_back_and_the_worker_goes_on(
    start_worker, broker, jira, database
):
    """A full delay queue (max-length with reject-publish overflow) nacks the retry: the
    login is held, put back a little later and synced then; nothing lost, no crash."""
    t: Topology = broker.topology
    user, filler = jira.add_user("jdoe"), jira.add_user("filler")
    worker = start_worker()
    second = t.retry_queue(t.retry_delays[1])
    jira.fail_next(2, status=503, path_contains=LOOKUP + "jdoe")
    with broker_policy(f"{t.prefix}-full", second, {"max-length": 0}):
        # A full queue refuses what comes after the message it holds: a login delayed
        # like a retry, back in the login queue 4 s on.
        with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                t.delay_exchange,
                "user-logged-in",
                login_body(username="filler"),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    headers={DELAY_HEADER: t.retry_key(t.retry_delays[1])},
                ),
            )
        broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
        wait_for(lambda: "refused its retry" in worker.log(), what="the refusal")

    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    wait_for(lambda: asset_of(database, filler["key"]), what="the filler's asset")
    assert jira.request_count(LOOKUP + "jdoe") == 3  # two failures, then synced
    assert broker.dead_letters() == []
    assert [broker.count(q) for q in retry_queues(t)] == [0, 0]
    assert worker.proc.poll() is None
