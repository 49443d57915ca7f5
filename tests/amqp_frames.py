"""Content headers written byte by byte, and published as they are: what a hostile
publisher can send that no client library would write (AMQP 0-9-1, 2.3.5 and 4.2.6)."""

from __future__ import annotations

import contextlib
import struct
import time

import kombu

CONTENT_TYPE, HEADERS, DELIVERY_MODE, MESSAGE_ID, TIMESTAMP = (
    0x8000,
    0x2000,
    0x1000,
    0x0080,
    0x0040,
)


def short(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def table(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack(">I", len(body)) + body


def entry(key: bytes, value: bytes) -> bytes:
    return short(key) + value


def stamp(seconds: int) -> bytes:
    return b"T" + struct.pack(">Q", seconds)


def long_string(data: bytes) -> bytes:
    return b"S" + struct.pack(">I", len(data)) + data


def nested(depth: int) -> bytes:
    """A table holding a table holding ... ``depth`` tables in all."""
    value = b"F" + table()
    for _ in range(depth - 1):
        value = b"F" + table(entry(b"k", value))
    return value


def properties(flags: int, *parts: bytes) -> bytes:
    return struct.pack(">H", flags) + b"".join(parts)


def json_with_headers(*entries: bytes) -> bytes:
    """Persistent JSON with these header table entries."""
    return properties(
        CONTENT_TYPE | HEADERS | DELIVERY_MODE,
        short(b"application/json"),
        table(*entries),
        b"\x02",
    )


def publish_frames(url: str, *, exchange: str, routing_key: str, body: bytes, props: bytes) -> None:
    """One basic.publish with these properties, confirmed by the broker."""
    with kombu.Connection(url) as conn:
        conn.connect()
        amqp_conn = conn.connection
        channel = amqp_conn.channel()
        channel.confirm_select()
        acks: list[object] = []
        channel.events["basic_ack"].add(lambda *args: acks.append(args))

        def frame(kind: int, payload: bytes) -> bytes:
            return struct.pack(">BHI", kind, channel.channel_id, len(payload)) + payload + b"\xce"

        method = struct.pack(">HHH", 60, 40, 0) + short(exchange.encode())
        method += short(routing_key.encode()) + b"\x00"
        header = struct.pack(">HHQ", 60, 0, len(body)) + props
        assert len(body) < amqp_conn.frame_max - 8, "one body frame is all this writes"
        frames = frame(1, method) + frame(2, header) + (frame(3, body) if body else b"")
        amqp_conn.transport.write(frames)
        deadline = time.monotonic() + 10
        while not acks:
            assert time.monotonic() < deadline, "the broker did not confirm the raw publish"
            with contextlib.suppress(TimeoutError):
                amqp_conn.drain_events(timeout=0.5)
