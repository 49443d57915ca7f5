"""``worker.decoding.decode``: which deliveries become messages, and why others are refused.

Every refusal is an ``InvalidMessage`` whose text gives the reason (it ends up in the
dead-letter header), so each rejection test checks that text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from schemas.messages import BulkSyncRequested, UserLoggedIn
from worker.decoding import decode, parse_json
from worker.errors import InvalidMessage

EVENT_ID = "0b3c1a4e-1d2f-4e5a-9b6c-7d8e9f0a1b2c"
LOGIN = "user-logged-in"
BULK = "bulk-sync-requested"
MAX = 64 * 1024


def login(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": LOGIN,
        "schema_version": 1,
        "event_id": EVENT_ID,
        "occurred_at": "2024-05-01T12:00:00Z",
        "username": "jdoe",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not ...}


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def decode_login(data: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("content_type", "application/json")
    kwargs.setdefault("max_bytes", MAX)
    return decode(LOGIN, body(data), **kwargs)


@pytest.mark.parametrize("identifier", ["username", "user_key", "account_id"])
def test_login_with_any_one_identifier_is_accepted(identifier: str) -> None:
    data = login(username=...)
    data[identifier] = "someone"

    message = decode_login(data)

    assert isinstance(message, UserLoggedIn)
    assert getattr(message, identifier) == "someone"
    assert message.event_id == UUID(EVENT_ID)
    assert message.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", None, ""]
)
def test_json_content_types_and_no_content_type_are_accepted(content_type: str | None) -> None:
    assert isinstance(decode_login(login(), content_type=content_type), UserLoggedIn)


def test_bulk_sync_request_is_accepted_with_defaults() -> None:
    data = {
        "type": BULK,
        "schema_version": 1,
        "request_id": EVENT_ID,
        "requested_at": "2024-05-01T12:00:00+02:00",
        "requested_by": "admin",
    }

    message = decode(BULK, body(data), content_type="application/json", max_bytes=MAX)

    assert isinstance(message, BulkSyncRequested)
    assert (message.groups, message.username_prefix, message.dry_run) == ([], None, False)


def test_body_over_the_limit_is_refused_before_parsing() -> None:
    raw = b"x" * 2000

    with pytest.raises(InvalidMessage, match="2000 bytes, over the limit of 1024"):
        decode(LOGIN, raw, content_type="application/json", max_bytes=1024)


def test_body_exactly_at_the_limit_is_read() -> None:
    raw = body(login())

    assert isinstance(
        decode(LOGIN, raw, content_type="application/json", max_bytes=len(raw)), UserLoggedIn
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/jsonx"])
def test_non_json_content_type_is_refused(content_type: str) -> None:
    with pytest.raises(InvalidMessage, match="is not application/json"):
        decode_login(login(), content_type=content_type)


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"type": "user-logged-in",}'])
def test_malformed_json_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidMessage, match="not valid JSON"):
        decode(LOGIN, raw, content_type=None, max_bytes=MAX)


def test_invalid_utf8_is_refused() -> None:
    raw = b'{"type": "user-logged-in", "username": "j\xc3"}'

    with pytest.raises(InvalidMessage, match=r"not valid JSON.*utf-8"):
        decode(LOGIN, raw, content_type=None, max_bytes=MAX)


@pytest.mark.parametrize("data", [[login()], "user-logged-in", 1, None])
def test_json_that_is_not_an_object_is_refused(data: Any) -> None:
    with pytest.raises(InvalidMessage, match="not a JSON object"):
        decode_login(data)


@pytest.mark.parametrize("kind", [..., None, "user-logged-out", "USER-LOGGED-IN"])
def test_missing_or_unknown_type_is_refused(kind: Any) -> None:
    with pytest.raises(InvalidMessage, match="unknown message type"):
        decode_login(login(type=kind))


@pytest.mark.parametrize("kind", [["user-logged-in"], {"name": "user-logged-in"}])
def test_type_that_is_not_a_string_is_refused(kind: Any) -> None:
    with pytest.raises(InvalidMessage, match="unknown message type"):
        decode_login(login(type=kind))


def test_type_must_match_the_routing_key() -> None:
    with pytest.raises(InvalidMessage, match="does not match routing key 'bulk-sync-requested'"):
        decode(BULK, body(login()), content_type=None, max_bytes=MAX)


@pytest.mark.parametrize("version", [..., 2, 0, "1", None])
def test_unsupported_schema_version_is_refused(version: Any) -> None:
    with pytest.raises(InvalidMessage, match="unsupported schema_version"):
        decode_login(login(schema_version=version))


def test_schema_version_that_is_a_list_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="unsupported schema_version"):
        decode_login(login(schema_version=[1]))


def test_schema_version_true_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        decode_login(login(schema_version=True))


def test_login_without_identifier_is_refused() -> None:
    with pytest.raises(InvalidMessage, match=r"schema violation.*exactly one of"):
        decode_login(login(username=...))


def test_login_with_two_identifiers_is_refused() -> None:
    with pytest.raises(InvalidMessage, match=r"schema violation.*exactly one of"):
        decode_login(login(account_id="5b10ac8d82e05b22cc7d4ef5"))


def test_misspelt_field_is_refused_not_ignored() -> None:
    with pytest.raises(InvalidMessage, match=r"schema violation: .*'userName': Extra inputs"):
        decode_login(login(userName="jdoe"))


def test_a_key_from_the_sender_is_quoted_and_escaped_in_the_reason() -> None:
    """Seen: an unknown key holding a newline and an ANSI escape forged a log line
    (and a line of the dead-letter header) through the schema error's text."""
    key = "x\n2026-01-01 00:00:00,000 CRITICAL worker: FORGED\x1b[2J"
    with pytest.raises(InvalidMessage) as caught:
        decode_login(login(**{key: 1}))

    reason = str(caught.value)
    assert reason.endswith(
        "'x\\n2026-01-01 00:00:00,000 CRITICAL worker: FORGED\\x1b[2J': Extra inputs are not"
        " permitted"
    )
    assert reason.isprintable()


def test_time_without_timezone_is_refused() -> None:
    with pytest.raises(InvalidMessage, match=r"schema violation: .*occurred_at.*timezone"):
        decode_login(login(occurred_at="2024-05-01T12:00:00"))


def test_bad_event_id_is_refused_and_named() -> None:
    with pytest.raises(InvalidMessage, match=r"schema violation: .*event_id"):
        decode_login(login(event_id="not-a-uuid"))


def test_json_nested_too_deeply_is_refused_not_a_crash() -> None:
    # Seen: ~1,000 levels made json.loads raise RecursionError, which killed the replica.
    deep = b'{"type": "user-logged-in", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidMessage, match="nested too deeply"):
        decode(LOGIN, deep, content_type="application/json", max_bytes=1024 * 1024)


@pytest.mark.parametrize("text", ["a\\u0000b", "\\ud800", "x\\uDC00y"])
def test_text_the_database_cannot_store_is_refused_in_any_field(text: str) -> None:
    # Seen: a NUL in requested_by failed to open the run and to record that failure,
    # and the message went round 21 times in 0.1 s.
    raw = (
        '{"type": "bulk-sync-requested", "schema_version": 1,'
        ' "request_id": "0b3c1a4e-1d2f-4e5a-9b6c-7d8e9f0a1b2c",'
        ' "requested_at": "2024-05-01T12:00:00Z", "requested_by": "' + text + '"}'
    ).encode()
    with pytest.raises(InvalidMessage, match="NUL character or a lone surrogate"):
        decode(BULK, raw, content_type="application/json", max_bytes=MAX)


def test_a_surrogate_pair_is_text_like_any_other() -> None:
    message = decode_login(login(username=...) | {"username": "\U0001f600"})
    assert message.username == "\U0001f600"


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": [true, null, -0, 1.5e300, 12345678901234567890123], "c": "x\\u00e9\\u0000"}',
        b'{"a": 1, "a": 2}',  # the last of a repeated key wins, as in json.loads
        b'"\\ud834\\udd1e"',  # a surrogate pair
        '{"name": "Jürgen 日本"}'.encode(),
        b'{"n": NaN, "i": -Infinity}',
        b"\xef\xbb\xbf{}",  # a byte-order mark: only json.loads reads it
        b'"\\ud800"',  # a lone surrogate: only json.loads reads it (decode refuses it later)
        b"[" * 500 + b"]" * 500,  # deeper than pydantic's parser goes
    ],
)
def test_bodies_parse_to_what_json_loads_makes_of_them(body):
    got, expected = parse_json(body), json.loads(body)
    assert repr(got) == repr(expected)  # repr: NaN is not equal to itself


@pytest.mark.parametrize("body", [b"{nope", b"\xff", b'"a\nb"', b"[1,]", b""])
def test_what_json_loads_refuses_is_refused_with_its_error(body):
    with pytest.raises(ValueError) as expected:
        json.loads(body)
    with pytest.raises(ValueError) as got:
        parse_json(body)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)
