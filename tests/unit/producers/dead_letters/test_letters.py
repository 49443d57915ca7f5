"""``producers.dead_letters.letters``: telling what a dead letter is from untrusted bytes and
headers, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from producers.dead_letters.letters import (
    REPLAYED_FROM_HEADER,
    REPLAYS_HEADER,
    Envelope,
    Selection,
    describe,
    preview,
    printable,
    replay_headers,
)
from schemas.topology import ATTEMPT_HEADER, ERROR_HEADER


def user_sync(**user: object) -> bytes:
    return json.dumps(
        {"type": "user-sync", "run_id": "r-1", "user": {"jira_id": "JIRAUSER1", **user}}
    ).encode()


def test_a_message_rabbitmq_dead_lettered_tells_why_and_when():
    when = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    death = {"reason": "delivery_limit", "queue": "assetsync.user-sync", "time": when}
    envelope = Envelope(
        routing_key="user-sync", body=user_sync(name="jdoe"), headers={"x-death": [death]}
    )

    letter = describe(envelope)

    assert letter.reason == "RabbitMQ dead-lettered it from assetsync.user-sync: delivery_limit"
    assert letter.published_at == when
    assert letter.identity == "jira_id=JIRAUSER1 name=jdoe run=r-1"
    assert letter.replayable


def test_the_publishers_timestamp_wins_over_the_death_time():
    envelope = Envelope(
        routing_key="user-logged-in",
        body=b"{}",
        properties={"timestamp": 1_795_900_000},
        headers={"x-death": [{"time": datetime(2030, 1, 1, tzinfo=UTC)}]},
    )

    assert describe(envelope).published_at == datetime.fromtimestamp(1_795_900_000, UTC)


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe", b"[1, 2]", b"null", b'{"type": 7}', b"[" * 100_000, b"{" + b" " * 300_000],
)
def test_odd_bodies_have_no_identity_and_do_not_raise(body):
    letter = describe(Envelope(routing_key="user-logged-in", body=body))

    assert letter.identity == ""
    assert letter.id.startswith("sha256:")
    assert letter.body_bytes == len(body)


def test_a_message_id_that_is_huge_or_unprintable_is_replaced_by_a_body_hash():
    long_id = describe(Envelope("user-logged-in", b"{}", properties={"message_id": "x" * 500}))
    odd_id = describe(Envelope("user-logged-in", b"{}", properties={"message_id": "a\x1bb"}))

    assert long_id.id == odd_id.id
    assert long_id.id.startswith("sha256:")


def test_identity_values_are_bounded_and_printable():
    body = json.dumps({"type": "user-logged-in", "username": "\x1b[2J" + "j" * 500}).encode()

    identity = describe(Envelope("user-logged-in", body)).identity

    assert identity.startswith("username=\\x1b[2Jjjj")
    assert len(identity) == len("username=") + 80


def test_printable_escapes_controls_and_bidi_overrides_and_cuts():
    assert printable("ok \x1b[31mred\x07\u202e", 100) == "ok \\x1b[31mred\\x07\\u202e"
    assert printable("x" * 10, 5) == "xxxx…"
    assert printable("\x00" * 10, 8) == "\\x00\\x0…"
    assert printable("né", 2) == "né"


def test_preview_indents_json_cuts_text_at_a_whole_character_and_dumps_binary():
    assert preview(b'{"a": [1]}', 100) == ('{\n  "a": [\n    1\n  ]\n}', False)
    assert preview("é".encode() * 10, 5) == ("éé", True)
    assert preview(bytes(range(20)), 100) == (
        "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f\n10 11 12 13",
        False,
    )


def test_a_replayed_copy_drops_the_failure_and_keeps_the_rest():
    envelope = Envelope(
        routing_key="user-logged-in",
        body=b"{}",
        headers={
            ERROR_HEADER: "Jira answered 503",
            ATTEMPT_HEADER: 6,
            "x-death": [{"reason": "rejected"}],
            "x-delivery-count": 3,
            "x-trace": "t-7",
            REPLAYS_HEADER: 2,
        },
    )

    headers = replay_headers(envelope, "Jira answered 503")

    assert headers == {
        "x-trace": "t-7",
        REPLAYED_FROM_HEADER: "Jira answered 503",
        REPLAYS_HEADER: 3,
    }


def test_selection_needs_every_filter_given_and_any_of_its_values():
    letter = describe(
        Envelope(
            "user-logged-in",
            b"{}",
            headers={ERROR_HEADER: "Jira has no user 'x'"},
            properties={"message_id": "m-1"},
        )
    )

    assert Selection().everything and Selection().matches(letter)
    assert Selection.of(types=["user-sync", "user-logged-in"], reason="NO USER").matches(letter)
    assert not Selection.of(types=["user-logged-in"], ids=["m-2"]).matches(letter)
    assert Selection.of(ids=["m-2", "m-1"]).matches(letter)
