"""The fan-out's hand-written frames read back as py-amqp reads what it receives."""

from __future__ import annotations

import struct

import pytest
from amqp.basic_message import Message
from amqp.serialization import loads

from worker.broker import Outgoing
from worker.framing import Framer

FRAME_MAX = 4096


def _read(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, channel, payload) of each frame, checking sizes and end octets."""
    frames, at = [], 0
    while at < len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, at)
        payload = data[at + 7 : at + 7 + size]
        assert len(payload) == size and data[at + 7 + size] == 0xCE
        assert size <= FRAME_MAX - 8
        frames.append((kind, channel, payload))
        at += 8 + size
    return frames


@pytest.mark.parametrize("size", [0, 1, 500, FRAME_MAX - 8, FRAME_MAX - 7, 3 * FRAME_MAX])
@pytest.mark.parametrize("headers", [{}, {"assetsync-signature": "key=2;hmac-sha256=ab", "é": 5}])
def test_frames_carry_the_body_and_properties_a_reader_expects(
    size: int, headers: dict[str, object]
) -> None:
    template = Outgoing(body=b"", exchange="ex", routing_key="user-sync", headers=dict(headers))
    body = bytes(i % 251 for i in range(size))
    frames = _read(Framer(channel=7, frame_max=FRAME_MAX, template=template).frames(body, headers))
    (method_kind, _, method), (header_kind, _, header), *bodies = frames
    assert {c for _, c, _ in frames} == {7}
    assert (method_kind, header_kind) == (1, 2) and all(k == 3 for k, _, _ in bodies)
    assert struct.unpack_from(">HH", method) == (60, 40)
    assert loads("Bssb", method, 4)[0] == [0, "ex", "user-sync", True]
    class_id, _, body_size = struct.unpack_from(">HHQ", header)
    assert (class_id, body_size) == (60, size)
    message = Message()
    message._load_properties(class_id, header, 12)
    assert message.properties["delivery_mode"] == 2
    assert message.properties["content_type"] == "application/json"
    assert message.properties.get("application_headers", {}) == {
        k: str(v) for k, v in headers.items()
    }
    assert b"".join(p for _, _, p in bodies) == body
