"""Signature checks and Jira's user events -> user-changed, without any server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from producers.webhooks.dedup import RecentDeliveries
from producers.webhooks.payload import (
    BadDelivery,
    Skipped,
    delivery_id,
    parse,
    sign,
    signature_problem,
)
from tests.webhook_support import cloud_event, dc_event

SECRET = b"s3cr3t"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def body_of(event: dict) -> bytes:
    return json.dumps(event).encode()


def test_jiras_signature_is_accepted_in_either_case() -> None:
    body = b'{"webhookEvent":"user_updated"}'

    assert signature_problem(SECRET, body, sign(SECRET, body)) is None
    assert (
        signature_problem(SECRET, body, sign(SECRET, body).upper().replace("SHA256", "sha256"))
        is None
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no X-Hub-Signature header"),
        ("", "no X-Hub-Signature header"),
        ("sha1=abc", "not of the form sha256=<hex>"),
        ("sha256=", "not of the form sha256=<hex>"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=zz", "does not match"),
    ],
)
def test_anything_but_the_right_signature_is_refused(header, reason) -> None:
    assert reason in (signature_problem(SECRET, b"{}", header) or "")


def test_data_center_event_keeps_key_and_name_and_jiras_time() -> None:
    event = parse(body_of(dc_event("user_created")), delivery=None, received_at=NOW)

    assert not isinstance(event, Skipped)
    assert (event.change, event.user_key, event.username, event.account_id) == (
        "created",
        "JIRAUSER10100",
        "jdoe",
        None,
    )
    assert event.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_cloud_event_keeps_only_the_account_id() -> None:
    event = parse(body_of(cloud_event("user_deleted")), delivery="d-1", received_at=NOW)

    assert not isinstance(event, Skipped)
    assert (event.change, event.account_id, event.user_key, event.delivery) == (
        "deleted",
        "5b10ac8d82e05b22cc7d4ef5",
        None,
        "d-1",
    )


def test_every_delivery_of_one_jira_event_gets_the_same_event_id() -> None:
    body = body_of(cloud_event("user_updated"))

    first = parse(body, delivery="d-1", received_at=NOW)
    retry = parse(body, delivery="d-1", received_at=NOW)
    other = parse(body, delivery="d-2", received_at=NOW)

    assert first.event_id == retry.event_id != other.event_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "timestamp",
    [None, True, "1700000000000", 10**30, -5, 4_102_444_800_000],
    ids=["missing", "bool", "string", "huge", "negative", "year 2100"],
)
def test_an_unusable_timestamp_means_the_time_of_receipt(timestamp) -> None:
    event = dc_event("user_updated", ts=None)
    if timestamp is not None:
        event["timestamp"] = timestamp

    assert parse(body_of(event), delivery=None, received_at=NOW).occurred_at == NOW  # type: ignore[union-attr]


def test_app_accounts_are_skipped() -> None:
    skipped = parse(
        body_of(cloud_event("user_created", account_type="app")), delivery=None, received_at=NOW
    )

    assert isinstance(skipped, Skipped)
    assert skipped.reason == "app account '5b10ac8d82e05b22cc7d4ef5'"


@pytest.mark.parametrize(
    "user",
    [{"key": 7}, {"name": ""}, {"accountId": None}, {"key": "a\nb" * 200}],
    ids=["number", "empty", "null", "too long"],
)
def test_identities_that_are_not_short_strings_are_refused(user) -> None:
    with pytest.raises(BadDelivery):
        parse(
            body_of({"webhookEvent": "user_updated", "user": user}), delivery=None, received_at=NOW
        )


def test_a_delivery_id_must_be_short_and_printable() -> None:
    assert delivery_id(" abc-1 ") == "abc-1"
    assert delivery_id(None) is None and delivery_id("  ") is None
    for bad in ("x" * 256, "a\x00b"):
        with pytest.raises(BadDelivery):
            delivery_id(bad)


def test_recent_deliveries_forget_the_oldest_and_the_expired() -> None:
    now = [0.0]
    recent = RecentDeliveries(capacity=2, max_age=60, clock=lambda: now[0])
    for d in ("a", "b", "c"):
        recent.add(d)

    assert ("a" in recent, "b" in recent, "c" in recent) == (False, True, True)
    now[0] = 61.0
    assert "c" not in recent and len(recent) == 0


# ------------------------------------------------------------ any shape of JSON

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from producers.webhooks.payload import EVENTS  # noqa: E402
from schemas.messages import UserChanged  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
USER_FIELDS = ("accountType", "accountId", "key", "name", "displayName", "emailAddress")
USERS = st.dictionaries(st.sampled_from(USER_FIELDS) | st.text(max_size=8), JSON, max_size=6)
EVENT_NAMES = st.sampled_from([*EVENTS, "jira:issue_updated"]) | JSON
BODIES = st.fixed_dictionaries(
    {"webhookEvent": EVENT_NAMES, "user": USERS | JSON},
    optional={"timestamp": JSON | st.integers(), "extra": JSON},
)


@settings(max_examples=200, deadline=None)
@given(data=BODIES | JSON)
def test_any_json_is_a_message_a_skip_or_one_line_of_refusal(data: object) -> None:
    """Whatever JSON a signed delivery holds, the receiver answers 2xx or 400 with one
    line: ``parse`` returns or raises ``BadDelivery``, nothing else."""
    try:
        outcome = parse(json.dumps(data).encode(), delivery=None, received_at=NOW)
    except BadDelivery as exc:
        reason = str(exc)
        assert reason and reason.isprintable() and len(reason) < 400
    else:
        assert isinstance(outcome, UserChanged | Skipped)
