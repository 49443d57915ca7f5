"""``worker.content_header``: every content header RabbitMQ lets through can be read, and
what py-amqp or pika cannot represent is replaced by a string and named.

Each hostile value is first shown to break the library's own decoder (so these tests
would fail without the adaptation), then read, then written again by both libraries
(a dead-letter copy and a replay must go out)."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime
from typing import Any

import amqp
import amqp.serialization
import pika
import pika.data
import pika.spec
import pytest

from tests.amqp_frames import (
    CONTENT_TYPE,
    HEADERS,
    MESSAGE_ID,
    TIMESTAMP,
    entry,
    long_string,
    nested,
    properties,
    short,
    stamp,
    table,
)
from worker import content_header
from worker.content_header import MAX_DEPTH, PROBLEMS, read_properties

_LIBRARY_AMQP = amqp.serialization.PROPERTY_CLASSES[60]
_LIBRARY_PIKA = pika.spec.props[60]


def with_headers(*entries: bytes) -> bytes:
    return properties(CONTENT_TYPE | HEADERS, short(b"application/json"), table(*entries))


def through_amqp(raw: bytes) -> dict[str, Any]:
    content_header.install_amqp()
    decoded, _ = amqp.serialization.PROPERTY_CLASSES[60](raw, 0)
    return decoded


def through_pika(raw: bytes) -> Any:
    content_header.install_pika()
    props = pika.spec.props[60]()
    props.decode(raw)
    return props


def amqp_writes(decoded: dict[str, Any]) -> None:
    kept = {k: v for k, v in decoded.items() if k != PROBLEMS}
    amqp.Message(b"{}", **kept)._serialize_properties()


def pika_writes(props: Any) -> None:
    fields = {name: getattr(props, name) for name, _ in content_header.PROPERTIES}
    pika.BasicProperties(**fields).encode()


HOSTILE = {
    "a timestamp in the year 10000": (
        with_headers(entry(b"when", stamp(253402300800))),
        "header 'when': timestamp 253402300800 is after the year 9999",
    ),
    "a timestamp of 2**62 (OSError, like a lost connection)": (
        with_headers(entry(b"when", stamp(2**62))),
        f"header 'when': timestamp {2**62} is after the year 9999",
    ),
    "the largest timestamp (OverflowError)": (
        with_headers(entry(b"when", stamp(2**64 - 1))),
        f"header 'when': timestamp {2**64 - 1} is after the year 9999",
    ),
    "a timestamp in an array in a table": (
        with_headers(
            entry(b"log", b"F" + table(entry(b"at", b"A" + table(stamp(1), stamp(2**63)))))
        ),
        f"header 'log'.'at'[1]: timestamp {2**63} is after the year 9999",
    ),
    "tables nested 5,000 deep (RecursionError)": (
        with_headers(entry(b"k", nested(5000))),
        f"tables nested more than {MAX_DEPTH} deep",
    ),
}
# py-amqp cannot read these; pika hands them over as bytes.
NOT_UTF8 = {
    "a content type that is not UTF-8": (
        properties(CONTENT_TYPE, short(b"\xffapplication/json")),
        "property content_type is not UTF-8",
    ),
    "a message id that is not UTF-8": (
        properties(MESSAGE_ID, short(b"\xfe\xff" * 100)),
        "property message_id is not UTF-8",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_what_neither_library_can_read_is_read_named_and_written_again(case):
    raw, problem = HOSTILE[case]
    with pytest.raises((ValueError, OSError, OverflowError, RecursionError)):
        _LIBRARY_AMQP(raw, 0)
    with pytest.raises((ValueError, OSError, OverflowError, RecursionError)):
        _LIBRARY_PIKA().decode(raw)

    decoded = through_amqp(raw)
    props = through_pika(raw)

    assert any(problem in p for p in decoded[PROBLEMS]), decoded[PROBLEMS]
    assert props.problems == decoded[PROBLEMS]
    amqp_writes(decoded)
    pika_writes(props)


@pytest.mark.parametrize("case", NOT_UTF8)
def test_a_short_string_that_is_not_utf8_is_read_escaped_and_named(case):
    raw, problem = NOT_UTF8[case]
    with pytest.raises(UnicodeDecodeError):
        _LIBRARY_AMQP(raw, 0)

    decoded = through_amqp(raw)

    assert decoded[PROBLEMS] == (problem,)
    value = decoded.get("content_type") or decoded["message_id"]
    assert value.startswith(("\\xff", "\\xfe"))
    amqp_writes(decoded)  # cut to fit a short string again, though escaping lengthens it
    pika_writes(through_pika(raw))


def test_the_rest_of_the_headers_survive_a_value_that_cannot_be_read():
    raw = with_headers(
        entry(b"before", long_string(b"kept")),
        entry(b"when", stamp(253402300800)),
        entry(b"x-death", b"A" + table(b"F" + table(entry(b"count", b"l" + bytes(7) + b"\x02")))),
        entry(b"after", b"I" + struct.pack(">i", -7)),
    )

    headers = through_amqp(raw)["application_headers"]

    assert headers == {
        "before": "kept",
        "when": "(timestamp 253402300800, after the year 9999)",
        "x-death": [{"count": 2}],
        "after": -7,
    }
    assert through_pika(raw).content_type == "application/json"


def test_a_readable_header_is_left_to_the_library():
    raw = properties(
        CONTENT_TYPE | HEADERS | MESSAGE_ID | TIMESTAMP,
        short(b"application/json"),
        table(entry(b"when", stamp(1_700_000_000)), entry(b"\xff", long_string(b"\xfe"))),
        short(b"m-1"),
        struct.pack(">Q", 2**64 - 1),
    )

    assert through_amqp(raw) == _LIBRARY_AMQP(raw, 0)[0]
    props = through_pika(raw)
    assert props.problems == ()
    assert props.headers["when"] == datetime.fromtimestamp(1_700_000_000, UTC)
    assert props.timestamp == 2**64 - 1  # a property: seconds, whatever they are


def test_a_header_the_library_reads_but_cannot_write_again_is_cut_at_the_depth_limit():
    raw = with_headers(entry(b"k", nested(600)))
    _LIBRARY_AMQP(raw, 0)  # py-amqp reads it...
    with pytest.raises(RecursionError):  # ...but cannot write it back
        amqp.Message(b"", **_LIBRARY_AMQP(raw, 0)[0])._serialize_properties()

    decoded = through_amqp(raw)

    assert decoded[PROBLEMS] == (
        "header 'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k'.'k':"
        f" tables nested more than {MAX_DEPTH} deep",
    )
    amqp_writes(decoded)


def test_a_key_with_a_newline_is_quoted_in_the_problem():
    raw = with_headers(entry(b"a\n2026-01-01 CRITICAL forged\x1b[2J", stamp(2**63)))

    (problem,) = through_amqp(raw)[PROBLEMS]

    assert "\n" not in problem and "\x1b" not in problem
    assert problem.startswith("header 'a\\n2026-01-01 CRITICAL forged\\x1b[2J': timestamp")


def test_no_bytes_at_all_make_the_reader_raise():
    """What RabbitMQ refuses (unknown field types, lengths past the end, NaN) must not
    break the reader either: random mutations of real headers, and random bytes."""
    seed = with_headers(
        entry(b"s", long_string(b"text")),
        entry(b"t", stamp(2**40)),
        entry(b"a", b"A" + table(b"D\x02" + struct.pack(">i", 12345), b"V", b"t\x01")),
        entry(b"f", b"F" + table(entry(b"x", b"x" + struct.pack(">I", 3) + b"abc"))),
    )
    rng = random.Random(16)
    for _ in range(3000):
        raw = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        if rng.random() < 0.2:
            raw = bytearray(rng.randbytes(rng.randint(0, 64)))
        read = read_properties(bytes(raw))
        assert isinstance(read.problems, list)
        kept = dict(read.values)
        kept["application_headers"] = kept.pop("headers", None)
        amqp.Message(b"", **kept)._serialize_properties()
