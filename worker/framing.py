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

    def frames(self, body: bytes, headers: dict[str, Any]) -> bytes:
        """Method, content header and body frames of one message."""
        properties = (
            self._leading + _table(headers) + self._persistent
            if headers
            else (self._leading + self._persistent)
        )
        header = self._frame(2, struct.pack(">HHQ", 60, 0, len(body)) + properties)
        step = self._body_max
        return b"".join(
            [
                self._method,
                header,
                *(self._frame(3, body[i : i + step]) for i in range(0, len(body), step)),
            ]
        )

    def _frame(self, kind: int, payload: bytes) -> bytes:
        return struct.pack(">BHI", kind, self._channel, len(payload)) + payload + b"\xce"


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
