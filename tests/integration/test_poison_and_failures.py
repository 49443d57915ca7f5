"""Bad input and failing dependencies: one clear dead-letter reason each, and the
worker keeps consuming."""

from __future__ import annotations

import json

import pytest

from lab.harness import asset_of, login_body, wait_for
from schemas.topology import ERROR_HEADER

POISON = [
    ("not JSON", b"{nope", "user-logged-in", "application/json", "not valid JSON"),
    ("not an object", b"[1, 2]", "user-logged-in", "application/json", "not a JSON object"),
    ("not JSON content", b"hello", "user-logged-in", "text/plain", "is not application/json"),
    (
        "type disagrees with routing key",
        login_body(username="jdoe").replace(b'"user-logged-in"', b'"bulk-sync-requested"'),
        "user-logged-in",
        "application/json",
        "does not match routing key",
    ),
    (
        "unknown schema version",
        login_body(username="jdoe").replace(b'"schema_version": 1', b'"schema_version": 7'),
        "user-logged-in",
        "application/json",
        "unsupported schema_version 7",
    ),
    (
        "two identifiers",
        login_body(username="jdoe", user_key="JIRAUSER10000"),
        "user-logged-in",
        "application/json",
        "exactly one of username, user_key, account_id",
    ),
    (
        "unknown field",
        login_body(userName="jdoe"),
        "user-logged-in",
        "application/json",
        "schema violation",
    ),
    (
        "oversized body",
        json.dumps({"type": "user-logged-in", "pad": "x" * 1_100_000}).encode(),
        "user-logged-in",
        "application/json",
        "over the limit of 1048576",
    ),
    (
        "nested too deeply (once crashed the whole worker)",
        b'{"type": "user-logged-in", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "user-logged-in",
        "application/json",
        "nested too deeply",
    ),
    (
        "user Jira does not know",
        login_body(username="nobody"),
        "user-logged-in",
        "application/json",
        "Jira has no user with username 'nobody'",
    ),
    (
        "Cloud identifier sent to Data Center",
        login_body(account_id="5b10a2844c20165700ede21g"),
        "user-logged-in",
        "application/json",
        "identifies users by username or user_key",
    ),
]


@pytest.mark.parametrize(
    ("body", "routing_key", "content_type", "reason"),
    [p[1:] for p in POISON],
    ids=[p[0] for p in POISON],
)
def test_poison_message_is_dead_lettered_with_its_reason_and_the_worker_goes_on(
    start_worker, broker, jira, database, body, routing_key, content_type, reason
):
    user = jira.add_user("jdoe")
    worker = start_worker()
    broker.publish_raw(body, routing_key=routing_key, content_type=content_type)
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")

    wait_for(lambda: asset_of(database, user["key"]), what="the good message after the bad one")
    dead = wait_for(broker.dead_letters, what="the dead letter")
    assert len(dead) == 1
    dead_body, headers = dead[0]
    assert dead_body == body  # the original bytes, for whoever investigates
    assert reason in headers[ERROR_HEADER]
    assert worker.proc.poll() is None


def test_unknown_message_type_goes_to_the_dead_queue_without_a_consumer(broker, start_worker):
    start_worker()  # declares the topology
    body = json.dumps({"type": "user-deleted", "schema_version": 1}).encode()
    broker.publish_raw(body, routing_key="user-deleted")
    dead = wait_for(broker.dead_letters, what="the unroutable message")
    assert [b for b, _ in dead] == [body]


def test_retries_are_bounded_then_the_message_is_dead_lettered(
    start_worker, broker, jira, database
):
    jira.add_user("jdoe")
    jira.fail_next(100, status=503, path_contains="/user")
    worker = start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    dead = wait_for(broker.dead_letters, what="the dead letter")
    reason = dead[0][1][ERROR_HEADER]
    # Two delays configured: three attempts in all, then the dead queue.
    assert reason == "gave up after 3 attempts: Jira answered 503 to /rest/api/2/user"
    assert jira.request_count("/rest/api/2/user?") == 3
    assert asset_of(database, "JIRAUSER10000") is None
    assert worker.proc.poll() is None


def test_revoked_jira_credentials_stop_the_worker_with_one_line_and_keep_the_message(
    start_worker, broker, jira, database
):
    jira.add_user("jdoe")
    worker = start_worker()
    jira.fail_next(1, status=401, path_contains="/user")
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    assert worker.wait(timeout=20) == 78
    assert "check ASSETSYNC_JIRA_USERNAME/ASSETSYNC_JIRA_TOKEN" in worker.log()
    assert "Traceback" not in worker.log()
    # The login was put back, not lost: a healthy replica syncs it.
    start_worker()
    wait_for(lambda: asset_of(database, "JIRAUSER10000"), what="the asset")
    assert broker.dead_letters() == []
