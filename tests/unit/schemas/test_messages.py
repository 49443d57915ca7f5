"""The wire contract: committed JSON Schemas, message round trips, and the queue topology."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from schemas.__main__ import generated
from schemas.messages import (
    MODELS,
    BulkSyncRequested,
    JiraUser,
    UserChanged,
    UserLoggedIn,
    UserSync,
    to_body,
    user_sync_bodies,
)
from schemas.topology import DELIVERY_LIMIT, QueueSpec, Topology
from worker.decoding import decode

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ID = UUID("0b3c1a4e-1d2f-4e5a-9b6c-7d8e9f0a1b2c")


@pytest.mark.parametrize("path", sorted(generated()), ids=lambda p: p.name)
def test_committed_json_schema_is_up_to_date(path: Path) -> None:
    expected = generated()[path]
    committed = path.read_text() if path.exists() else None

    assert committed == expected, f"{path} is stale: run `python -m schemas` and commit it"


def test_there_is_a_committed_schema_for_every_message_type() -> None:
    assert sorted(p.name for p in generated()) == sorted(f"{n}.schema.json" for n in MODELS)


def test_committed_schemas_require_type_and_version() -> None:
    for path in generated():
        schema = json.loads(path.read_text())
        assert schema["required"][:2] == ["type", "schema_version"], path.name


MESSAGES = [
    UserLoggedIn(event_id=ID, occurred_at=WHEN, username="jdoe"),
    UserLoggedIn(event_id=ID, occurred_at=WHEN, user_key="JIRAUSER10100"),
    UserLoggedIn(event_id=ID, occurred_at=WHEN, account_id="5b10ac8d82e05b22cc7d4ef5"),
    BulkSyncRequested(request_id=ID, requested_at=WHEN, requested_by="admin"),
    BulkSyncRequested(
        request_id=ID,
        requested_at=WHEN,
        requested_by="admin",
        username_prefix="j",
        groups=["jira-users", "staff"],
        dry_run=True,
    ),
    UserSync(
        run_id=ID,
        fetched_at=WHEN,
        dry_run=True,
        user=JiraUser(
            jira_id="JIRAUSER10100",
            name="jdoe",
            key="JIRAUSER10100",
            display_name="Jane Doe",
            email_address="jane@example.com",
            active=False,
            time_zone="Europe/Berlin",
            locale="de_DE",
            avatar_url="https://jira.example.com/avatar.png",
            groups=("jira-users",),
        ),
    ),
    UserSync(run_id=ID, fetched_at=WHEN, user=JiraUser(jira_id="5b10ac8d82e05b22cc7d4ef5")),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type)
def test_message_survives_the_wire(message: UserLoggedIn | BulkSyncRequested | UserSync) -> None:
    body = to_body(message)

    assert decode(message.type, body, content_type="application/json", max_bytes=len(body)) == (
        message
    )


@pytest.mark.parametrize("dry_run", [False, True])
def test_fan_out_bodies_are_the_models_own_json(dry_run: bool) -> None:
    run_id = UUID("9b2f1c3e-8a41-4f6b-9c0d-1e2f3a4b5c6d")
    fetched_at = datetime(2026, 11, 29, 6, 30, 0, 123456, tzinfo=UTC)
    users = [
        JiraUser(jira_id="JIRAUSER10001", name="jdoe", display_name='Jane "JD" Doe'),
        JiraUser(jira_id="JIRAUSER10002", name="émile", active=False, groups=("g1", "g2")),
        JiraUser(jira_id="acc-3", account_id="acc-3", locale="de_DE", email_address=None),
    ]

    bodies = user_sync_bodies(run_id=run_id, dry_run=dry_run, fetched_at=fetched_at, users=users)

    expected = [
        to_body(UserSync(run_id=run_id, dry_run=dry_run, fetched_at=fetched_at, user=u))
        for u in users
    ]
    assert bodies == expected
    assert [decode("user-sync", b, content_type=None, max_bytes=10_000).user for b in bodies] == (
        users
    )
    assert user_sync_bodies(run_id=run_id, dry_run=dry_run, fetched_at=fetched_at, users=[]) == []


def queue(topology: Topology, name: str) -> QueueSpec:
    return next(q for q in topology.queues() if q.name == name)


TOPOLOGY = Topology(prefix="acme-sync", retry_delays=(0.5, 5.0, 90.0))
WORK_QUEUES = [TOPOLOGY.login_queue, TOPOLOGY.bulk_queue, TOPOLOGY.user_sync_queue]


@pytest.mark.parametrize("name", WORK_QUEUES)
def test_work_queue_dead_letters_with_a_delivery_limit(name: str) -> None:
    args = queue(TOPOLOGY, name).arguments

    assert args["x-queue-type"] == "quorum"
    assert args["x-dead-letter-exchange"] == "acme-sync.dead"
    assert args["x-delivery-limit"] == DELIVERY_LIMIT > 0


def test_every_queue_is_a_quorum_queue() -> None:
    assert {q.arguments["x-queue-type"] for q in TOPOLOGY.queues()} == {"quorum"}


def test_each_message_type_is_routed_to_its_own_work_queue() -> None:
    routes = {queue(TOPOLOGY, n).bindings[0].routing_key: n for n in WORK_QUEUES}

    assert routes == {
        "user-logged-in": "acme-sync.login",
        "bulk-sync-requested": "acme-sync.bulk",
        "user-sync": "acme-sync.user-sync",
    }


def test_unroutable_messages_go_to_the_dead_queue() -> None:
    main = next(e for e in TOPOLOGY.exchanges() if e.name == TOPOLOGY.exchange)

    assert main.arguments["alternate-exchange"] == TOPOLOGY.dead_exchange
    assert queue(TOPOLOGY, TOPOLOGY.dead_queue).bindings[0].exchange == TOPOLOGY.dead_exchange


def test_there_is_one_retry_queue_per_configured_delay() -> None:
    retry = [q for q in TOPOLOGY.queues() if q.name.startswith("acme-sync.retry.")]

    assert sorted(q.arguments["x-message-ttl"] for q in retry) == [500, 5000, 90000]


# -- user-changed (the webhook receiver's message) ----------------------------------------


def changed(**identity: str) -> UserChanged:
    return UserChanged(event_id=ID, occurred_at=WHEN, change="updated", **identity)


@pytest.mark.parametrize(
    "identity",
    [
        {"user_key": "JIRAUSER10100", "username": "jdoe"},
        {"user_key": "JIRAUSER10100"},
        {"username": "jdoe"},
        {"account_id": "5b10ac8d82e05b22cc7d4ef5"},
    ],
    ids=["key and name", "key", "name", "account id"],
)
def test_user_changed_survives_the_wire(identity: dict[str, str]) -> None:
    message = changed(**identity)
    body = to_body(message)

    assert decode("user-changed", body, content_type=None, max_bytes=len(body)) == message


@pytest.mark.parametrize(
    "identity",
    [{}, {"account_id": "acc", "user_key": "JIRAUSER1"}, {"account_id": "acc", "username": "x"}],
    ids=["none", "cloud and key", "cloud and name"],
)
def test_user_changed_needs_one_flavour_of_identity(identity: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="account_id"):
        changed(**identity)


def test_user_changed_goes_to_the_login_queue() -> None:
    keys = {b.routing_key for b in queue(TOPOLOGY, TOPOLOGY.login_queue).bindings}

    assert keys == {"user-logged-in", "user-changed"}


def test_requests_for_the_same_run_have_one_key_and_others_another():
    from datetime import UTC, datetime
    from uuid import uuid4

    from schemas.messages import BulkSyncRequested

    def key(**fields: object) -> str:
        request = BulkSyncRequested(
            request_id=uuid4(), requested_at=datetime.now(UTC), requested_by="x", **fields
        )
        return request.run_key()

    assert key(username_prefix="Ab", groups=["g2", "g1", "g1"]) == key(
        username_prefix="aB", groups=["g1", "g2"]
    )
    assert len({key(), key(dry_run=True), key(username_prefix="a"), key(groups=["G1"]),
                key(groups=["g1"]), key(username_prefix="a", dry_run=True)}) == 6  # fmt: skip
