"""``python -m producers.jira_webhooks``: what Jira gets back and what reaches the queue."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from lab.harness import Broker, wait_for
from lab.proxy import Proxy
from tests.webhook_support import (
    SECRET,
    ReceiverProcess,
    cloud_event,
    dc_event,
    receiver_env,
    signature,
)


@pytest.fixture
def start_receiver(broker: Broker, tmp_path: Path) -> Iterator[Callable[..., ReceiverProcess]]:
    started: list[ReceiverProcess] = []

    def start(*, amqp_url: str | None = None, **env: Any) -> ReceiverProcess:
        process = ReceiverProcess(
            env=receiver_env(amqp_url=amqp_url or broker.url, topology=broker.topology, **env),
            log_path=tmp_path / f"receiver-{len(started)}.log",
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def receiver(start_receiver: Callable[..., ReceiverProcess]) -> ReceiverProcess:
    return start_receiver()


def published(broker: Broker) -> list[dict[str, Any]]:
    return [json.loads(body) for body, _ in broker.drain(broker.topology.login_queue)]


def test_signed_data_center_event_is_published_after_the_confirm(receiver, broker):
    answer = receiver.post(dc_event("user_updated"))

    assert answer.status_code == 200
    [message] = published(broker)
    assert message["type"] == "user-changed"
    assert answer.text.strip() == f"published user-changed {message['event_id']}"
    assert {k: message[k] for k in ("change", "user_key", "username", "account_id")} == {
        "change": "updated",
        "user_key": "JIRAUSER10100",
        "username": "jdoe",
        "account_id": None,
    }
    assert message["occurred_at"] == "2023-11-14T22:13:20Z"  # Jira's timestamp


@pytest.mark.parametrize(
    ("event", "change"),
    [("user_created", "created"), ("user_updated", "updated"), ("user_deleted", "deleted")],
)
def test_each_cloud_user_event_is_published_with_its_account_id(receiver, broker, event, change):
    answer = receiver.post(cloud_event(event), delivery=f"cloud-{event}")

    assert answer.status_code == 200
    [message] = published(broker)
    assert (message["change"], message["account_id"], message["user_key"]) == (
        change,
        "5b10ac8d82e05b22cc7d4ef5",
        None,
    )
    assert message["delivery"] == f"cloud-{event}"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature": signature("not-the-secret", b"x")},
        {"X-Hub-Signature": "sha1=0123456789abcdef"},
        {"X-Hub-Signature": b"sha256=" + "é".encode("latin-1") * 64},
    ],
    ids=["unsigned", "wrong secret", "other algorithm", "not hex"],
)
def test_deliveries_not_signed_with_the_secret_get_401_and_publish_nothing(
    receiver, broker, headers
):
    body = json.dumps(dc_event("user_updated", name="marker-4711")).encode()

    answer = receiver.post(body, secret=None, headers=headers)

    assert answer.status_code == 401
    assert len(answer.text.strip().splitlines()) == 1
    assert published(broker) == []
    refusals = [line for line in receiver.log().splitlines() if "answered 401" in line]
    assert len(refusals) == 1
    assert "marker-4711" not in receiver.log()  # the body is never logged


def test_a_body_changed_after_signing_gets_401(receiver, broker):
    body = json.dumps(dc_event("user_updated")).encode()
    tampered = body.replace(b"jdoe", b"root")

    answer = receiver.post(
        tampered, secret=None, headers={"X-Hub-Signature": signature(SECRET, body)}
    )

    assert answer.status_code == 401
    assert published(broker) == []


def test_a_replayed_delivery_is_answered_but_published_once(receiver, broker):
    first = receiver.post(cloud_event("user_updated"), delivery="delivery-1")
    again = receiver.post(cloud_event("user_updated"), delivery="delivery-1")
    other = receiver.post(cloud_event("user_updated"), delivery="delivery-2")

    assert [first.status_code, again.status_code, other.status_code] == [200, 200, 200]
    assert "already published" in again.text
    assert [m["delivery"] for m in published(broker)] == ["delivery-1", "delivery-2"]


def test_a_retry_arriving_while_the_first_copy_is_published_is_published_once(receiver, broker):
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda _: receiver.post(cloud_event("user_updated"), delivery="racing"), range(8)
            )
        )

    assert [a.status_code for a in answers] == [200] * 8
    assert [m["delivery"] for m in published(broker)] == ["racing"]


def test_out_of_order_deliveries_are_each_published_with_jiras_time(receiver, broker):
    """Created at t1, updated at t2, delivered updated first: both go out, each with
    its own time, so the worker (which fetches current data anyway) can tell."""
    late = receiver.post(dc_event("user_updated", ts=1_700_000_002_000), delivery="d-updated")
    early = receiver.post(dc_event("user_created", ts=1_700_000_001_000), delivery="d-created")

    assert (late.status_code, early.status_code) == (200, 200)
    got = [(m["change"], m["occurred_at"]) for m in published(broker)]
    assert got == [("updated", "2023-11-14T22:13:22Z"), ("created", "2023-11-14T22:13:21Z")]


def test_a_deleted_user_is_published_as_deleted_by_key(receiver, broker):
    answer = receiver.post(dc_event("user_deleted", key="JIRAUSER10200", name="gone"))

    assert answer.status_code == 200
    [message] = published(broker)
    assert (message["change"], message["user_key"], message["username"]) == (
        "deleted",
        "JIRAUSER10200",
        "gone",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not valid JSON"),
        (
            json.dumps({"webhookEvent": "jira:issue_updated", "issue": {}}).encode(),
            "not a user event",
        ),
        (json.dumps({"webhookEvent": "user_updated"}).encode(), "without a user object"),
        (
            json.dumps({"webhookEvent": "user_updated", "user": {"displayName": "X"}}).encode(),
            "names no user",
        ),
        (json.dumps(dc_event("user_updated", key="K" * 300)).encode(), "unusable user identity"),
    ],
    ids=[
        "malformed",
        "array",
        "deeply nested",
        "issue event",
        "no user",
        "no identity",
        "key too long",
    ],
)
def test_unusable_bodies_get_400_with_one_line_and_publish_nothing(receiver, broker, body, reason):
    answer = receiver.post(body)

    assert answer.status_code == 400
    assert reason in answer.text
    assert len(answer.text.strip().splitlines()) == 1
    assert published(broker) == []


@pytest.mark.parametrize(
    "user",
    [
        {"accountType": [], "accountId": "x"},
        {"accountType": "atlassian", "accountId": json.loads("[" * 900 + "]" * 900)},
        {"key": {"\n2026-01-01 00:00:00,000 CRITICAL FORGED": 1}, "name": "jdoe"},
    ],
    ids=["accountType a list", "accountId nested 900 deep", "key an object"],
)
def test_a_user_of_any_other_shape_gets_400_and_one_log_line(receiver, broker, user):
    """Seen: ``accountType`` as a list answered 500 with a traceback (unhashable type)."""
    before = receiver.log().splitlines()

    answer = receiver.post(json.dumps({"webhookEvent": "user_updated", "user": user}).encode())

    assert answer.status_code == 400
    assert answer.text.startswith("user.account") or answer.text.startswith("user.key")
    assert "is not a string" in answer.text
    added = wait_for(lambda: receiver.log().splitlines()[len(before) :], what="its log line")
    assert len(added) == 1 and "answered 400" in added[0], added
    assert published(broker) == []
    assert receiver.post(dc_event("user_updated")).status_code == 200  # still serving


def test_a_body_over_the_limit_gets_413(start_receiver, broker):
    receiver = start_receiver(ASSETSYNC_WEBHOOK_MAX_BYTES="2048")
    event = dc_event("user_updated")
    event["user"]["displayName"] = "x" * 4096

    answer = receiver.post(event)

    assert answer.status_code == 413
    assert published(broker) == []
    assert receiver.post(dc_event("user_updated")).status_code == 200  # still serving


def test_app_and_customer_accounts_are_answered_but_not_synced(receiver, broker):
    answers = [
        receiver.post(cloud_event("user_created", account_type=kind))
        for kind in ("app", "customer")
    ]

    assert [a.status_code for a in answers] == [200, 200]
    assert all(a.text.startswith("ignored: ") for a in answers)
    assert published(broker) == []


def test_broker_away_gets_503_and_the_retry_is_delivered_once_it_is_back(start_receiver, broker):
    broker.declare()  # the queue must exist while the receiver cannot declare it
    host, port = urlsplit(broker.url).hostname, urlsplit(broker.url).port
    with Proxy((host or "127.0.0.1", port or 5672)) as proxy:
        receiver = start_receiver(amqp_url=proxy.url(broker.url))
        assert receiver.post(cloud_event("user_updated"), delivery="before").status_code == 200

        proxy.refuse()
        refused = receiver.post(cloud_event("user_updated"), delivery="during")
        assert refused.status_code == 503
        assert httpx.get(f"{receiver.base}/healthz").json()["broker"] == "down"

        proxy.restore()
        # Jira retries the same delivery until it gets a 2xx.
        retried = wait_for(
            lambda: (
                (r := receiver.post(cloud_event("user_updated"), delivery="during")).status_code
                == 200
                and r
            ),
            timeout=30,
            what="the receiver to publish again",
        )

    assert "published" in retried.text
    assert [m["delivery"] for m in published(broker)] == ["before", "during"]
    assert "answering 503 until it is back" in receiver.log()


def test_refuses_to_start_without_a_secret(broker, tmp_path):
    process = ReceiverProcess(
        env=receiver_env(amqp_url=broker.url, topology=broker.topology, secret=None),
        log_path=tmp_path / "receiver.log",
    )
    with pytest.raises(AssertionError, match="receiver exited early"):
        process.start()

    assert process.stop() == 78
    assert process.log().strip().splitlines() == [
        "python -m producers.jira_webhooks: ASSETSYNC_WEBHOOK_SECRET is not set: refusing"
        " unsigned webhooks (set ASSETSYNC_WEBHOOK_INSECURE=true only for a receiver on a"
        " private network)"
    ]


def test_insecure_mode_accepts_unsigned_deliveries_and_says_so(start_receiver, broker):
    receiver = start_receiver(secret=None, ASSETSYNC_WEBHOOK_INSECURE="true")

    answer = receiver.post(dc_event("user_created"), secret=None)

    assert answer.status_code == 200
    assert len(published(broker)) == 1
    assert "accepting UNSIGNED webhooks" in receiver.log()


def test_health_reports_the_broker_and_what_was_answered(receiver, broker):
    receiver.post(dc_event("user_updated"))
    receiver.post(b"nope")

    health = httpx.get(f"{receiver.base}/healthz")

    assert health.status_code == 200
    answer = health.json()
    assert datetime.fromisoformat(answer.pop("last_published_at")) <= datetime.now(UTC)
    assert answer == {
        "status": "ok",
        "broker": "up",
        "published": 1,
        "duplicates": 0,
        "skipped": 0,
        "refused": {"400": 1},
        "connections_closed": {},
    }


def test_metrics_count_every_answer_by_outcome(receiver, broker):
    from prometheus_client.parser import text_string_to_metric_families

    receiver.post(dc_event("user_updated"), delivery="d-1")
    receiver.post(dc_event("user_updated"), delivery="d-1")
    receiver.post(b"nope")

    text = httpx.get(f"{receiver.base}/metrics").text
    counted = {
        (s.labels["outcome"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "assetsync_webhook_deliveries_total"
    }
    assert counted == {("published", "200"): 1, ("duplicate", "200"): 1, ("refused", "400"): 1}


def test_stops_on_sigterm_with_exit_code_0(receiver):
    assert receiver.stop() == 0
