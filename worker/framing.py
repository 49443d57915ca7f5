"""AMQP 0-9-1 frames of ``basic.publish``, written by hand for the fan-out's pages.

A page's messages differ only in their bodies (and a signature header), so their method
frame is made once and each content header and body frame straight from the
specification (sections 2.3.5 and 4.2.6): py-amqp would serialise every message's method
and properties anew, about 14 us of CPU per message, several times what the fan-out
needs. ``worker.broker`` writes the frames in large chunks.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol


class Template(Protocol):
    """What the frames of a page share (``broker.Outgoing`` has it)."""

    @property
    def exchange(self) -> str: ...
    @property
    def routing_key(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content_encoding(self) -> str: ...
    @property
    def headers(self) -> dict[str, Any]: ...


class Framer:
    """The frames of ``basic.publish`` for bodies that share everything else: a
    persistent message with ``content_type``, ``content_encoding`` and string headers
    (AMQP 0-9-1, sections 2.3.5 and 4.2.6; class basic = 60, method publish = 40)."""

    def __init__(self, *, channel: int, frame_max: int, template: Template) -> None:
        self._channel = channel
        self._body_max = frame_max - 8  # a frame's header and end octet take 8
        # basic.publish: reserved short, exchange, routing key, mandatory/immediate bits
        # (mandatory: a message no queue takes is returned, see broker.ConfirmPublisher).
        self._method = self._frame(
            1,
            struct.pack(">HHH", 60, 40, 0)
            + _shortstr(template.exchange)
            + _shortstr(template.routing_key)
            + b"\x01",
        )
        # Property flags: content-type (bit 15), content-encoding (14), headers (13),
        # delivery-mode (12); the properties follow in that order.
        flags = 0x8000 | 0x4000 | 0x1000 | (0x2000 if template.headers else 0)
        self._leading = (
            struct.pack(">H", flags)
            + _shortstr(template.content_type)
            + _shortstr(template.content_encoding)
        )
        self._persistent = b"\x02"
        # What each message's frames start with, made once: a frame's type and channel,
        # the content header's class and weight.
        self._header_start = struct.pack(">BH", 2, channel)
        self._body_start = struct.pack(">BH", 3, channel)
        self._names: dict[str, bytes] = {}  # header name -> its encoding and type "S"

    def frames(self, body: bytes, headers: dict[str, Any]) -> bytes:
        """Method, content header and body frames of one message."""
        properties = (
            self._leading + self._table(headers) + self._persistent
            if headers
            else (self._leading + self._persistent)
        )
        size = len(body)
        parts = [
            self._method,
            self._header_start,
            _HEADER.pack(12 + len(properties), 60, 0, size),
            properties,
            b"\xce",
        ]
        step = self._body_max
        for i in range(0, size, step):  # one frame for all but the largest bodies
            chunk = body[i : i + step] if size > step else body
            parts += (self._body_start, _LENGTH.pack(len(chunk)), chunk, b"\xce")
        return b"".join(parts)

    def _table(self, headers: dict[str, Any]) -> bytes:
        """``_table``, each name's encoding kept: a page's messages share their names."""
        entries: list[bytes] = []
        for name, value in headers.items():
            start = self._names.get(name)
            if start is None:
                start = self._names[name] = _shortstr(name) + b"S"
            data = str(value).encode()
            entries += (start, _LENGTH.pack(len(data)), data)
        joined = b"".join(entries)
        return _LENGTH.pack(len(joined)) + joined

    def _frame(self, kind: int, payload: bytes) -> bytes:
        return struct.pack(">BHI", kind, self._channel, len(payload)) + payload + b"\xce"


_HEADER = struct.Struct(">IHHQ")  # frame size; class, weight and body size
_LENGTH = struct.Struct(">I")


def _table(headers: dict[str, Any]) -> bytes:
    """An AMQP field table of string values (type ``S``, long string)."""
    entries = b"".join(
        _shortstr(name) + b"S" + struct.pack(">I", len(data)) + data
        for name, data in ((k, str(v).encode()) for k, v in headers.items())
    )
    return struct.pack(">I", len(entries)) + entries


def _shortstr(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {value[:40]!r}...")
    return bytes([len(data)]) + data
