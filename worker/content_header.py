"""A delivery's basic properties (its AMQP content header) read from whatever bytes a
publisher sent, for py-amqp (the workers) and pika (the dead-letter tool).

Both libraries decode a content header inside their frame reader, before any code of
ours sees the delivery, and neither can hand over a delivery with a value it cannot
represent. RabbitMQ checks the grammar of what it accepts, not the values, so any
publisher can send, and every consumer is then handed:

* a timestamp (``T``) after 9999-12-31, which ``datetime`` cannot hold: ValueError,
  OSError or OverflowError, by how far (the OSError looks like a lost connection);
* a short string property (content type, message id, ...) that is not UTF-8:
  UnicodeDecodeError in py-amqp;
* tables or arrays nested about a thousand deep: RecursionError; less deep, py-amqp
  reads them but cannot write them again, which a dead-letter copy must.

py-amqp raises out of ``drain_events`` and leaves its frame reader waiting for the
header it failed on (the connection is beyond use); pika drops its connection. Either
way the same delivery comes back to the next reader, until RabbitMQ's delivery limit.

So each library's decoder of basic properties, which both keep in a table by class id
(``amqp.serialization.PROPERTY_CLASSES``, ``pika.spec.props``), is wrapped once per
process (``install_amqp``, ``install_pika``). The library's own decoder runs first and
what it returns is kept as it is; only when it raises, or returns headers nested deeper
than ``MAX_DEPTH``, are the properties read again by ``read_properties``. That reader
accepts any bytes: a value it cannot represent becomes a string saying what it was,
and the delivery carries the list of what was replaced (``PROBLEMS`` among py-amqp's
properties, ``problems`` on pika's), so that the consumer dead-letters it with that
reason and the tool shows it. Every value it returns can be published again by both
libraries, so a dead-letter copy or a replay always goes out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

MAX_DEPTH = 16  # tables and arrays within tables: RabbitMQ's own x-death needs 4
MAX_PROBLEMS = 5  # listed, each cut to 200 characters; the rest are counted
PROBLEMS = "assetsync_undecodable"  # py-amqp: the key of the problems among properties
_LAST_STAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime holds
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NESTED = (dict, list)

# AMQP 0-9-1, class basic: the properties in flag order (bit 15 first), and their types.
PROPERTIES = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "T"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)
# Field values of fixed size (RabbitMQ's letters, and py-amqp's U and L).
_FIXED = {
    "t": ">B",
    "b": ">b",
    "B": ">B",
    "s": ">h",
    "U": ">h",
    "u": ">H",
    "I": ">i",
    "i": ">I",
    "l": ">q",
    "L": ">q",
    "f": ">f",
    "d": ">d",
}


@dataclass
class Read:
    """Properties by name (``headers`` for the field table), and what could not be read
    as sent, each a bounded line with every name from the message quoted."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _Malformed(Exception):
    """The bytes stop following the grammar here: the rest of this table is not read."""


def read_properties(buf: bytes | bytearray | memoryview, offset: int = 0) -> Read:
    """The basic properties that start at ``offset`` (the property flags). Never raises."""
    read = Read()
    data = bytes(buf)
    pos, end = offset, len(data)
    try:
        flags, pos = _unpack(">H", data, pos, end)
        continued = flags
        for _ in range(8):  # more flag words follow while bit 0 is set; basic needs none
            if not continued & 1:
                break
            continued, pos = _unpack(">H", data, pos, end)
        for bit, (name, kind) in zip(range(15, 1, -1), PROPERTIES, strict=True):
            if flags & (1 << bit):
                read.values[name], pos = _property(data, pos, end, name, kind, read)
    except _Malformed as exc:
        read.problems.append(f"{exc}; the properties after it were not read")
    more = len(read.problems) - MAX_PROBLEMS
    read.problems = [p if len(p) <= 200 else p[:199] + "…" for p in read.problems[:MAX_PROBLEMS]]
    if more > 0:
        read.problems.append(f"{more} more")
    return read


def too_deep(headers: dict[Any, Any]) -> bool:
    """Whether decoded headers nest tables or arrays deeper than ``MAX_DEPTH``."""
    for value in headers.values():  # the usual case, on every delivery: kept cheap
        if type(value) in _NESTED:
            break
    else:
        return False
    level: list[Any] = [headers]
    for _ in range(MAX_DEPTH + 1):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, _NESTED)
        ]
        if not level:
            return False
    return True


def _property(data: bytes, pos: int, end: int, name: str, kind: str, read: Read) -> Any:
    if kind == "o":
        return _unpack(">B", data, pos, end)
    if kind == "T":
        stamp, pos = _unpack(">Q", data, pos, end)
        return stamp, pos  # as both libraries give it: seconds
    if kind == "F":
        return _table(data, pos, end, 1, "header ", read)
    raw, pos = _short(data, pos, end)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError:
        read.problems.append(f"property {name} is not UTF-8")
        return _shortened(raw.decode(errors="backslashreplace")), pos


def _table(data: bytes, pos: int, end: int, depth: int, where: str, read: Read) -> Any:
    size, pos = _unpack(">I", data, pos, end)
    limit = _within(pos, size, end, where)
    if depth > MAX_DEPTH:
        read.problems.append(f"{where.rstrip('. ')}: tables nested more than {MAX_DEPTH} deep")
        return f"(a table nested more than {MAX_DEPTH} deep, {size} bytes)", limit
    table: dict[str | bytes, Any] = {}
    while pos < limit:
        raw, pos = _short(data, pos, limit)
        key = _text(raw)
        inner = f"{where}{_quote(key)}"
        try:
            table[key], pos = _value(data, pos, limit, depth, inner, read)
        except _Malformed as exc:
            read.problems.append(f"{exc}; the rest of its table was not read")
            return table, limit
    return table, limit


def _array(data: bytes, pos: int, end: int, depth: int, where: str, read: Read) -> Any:
    size, pos = _unpack(">I", data, pos, end)
    limit = _within(pos, size, end, where)
    if depth > MAX_DEPTH:
        read.problems.append(f"{where.rstrip('. ')}: arrays nested more than {MAX_DEPTH} deep")
        return f"(an array nested more than {MAX_DEPTH} deep, {size} bytes)", limit
    values: list[Any] = []
    while pos < limit:
        try:
            value, pos = _value(data, pos, limit, depth, f"{where}[{len(values)}]", read)
        except _Malformed as exc:
            read.problems.append(f"{exc}; the rest of its array was not read")
            return values, limit
        values.append(value)
    return values, limit


def _value(data: bytes, pos: int, end: int, depth: int, where: str, read: Read) -> Any:
    letter = chr(_unpack(">B", data, pos, end)[0])
    pos += 1
    if letter in _FIXED:
        value, pos = _unpack(_FIXED[letter], data, pos, end)
        return (bool(value) if letter == "t" else value), pos
    if letter == "S":
        size, pos = _unpack(">I", data, pos, end)
        limit = _within(pos, size, end, where)
        return _text(data[pos:limit]), limit
    if letter == "x":
        size, pos = _unpack(">I", data, pos, end)
        limit = _within(pos, size, end, where)
        return data[pos:limit], limit
    if letter == "T":
        stamp, pos = _unpack(">Q", data, pos, end)
        if stamp <= _LAST_STAMP:
            return _EPOCH + timedelta(seconds=stamp), pos
        read.problems.append(f"{where}: timestamp {stamp} is after the year 9999")
        return f"(timestamp {stamp}, after the year 9999)", pos
    if letter == "D":
        scale, pos = _unpack(">B", data, pos, end)
        digits, pos = _unpack(">i", data, pos, end)
        return Decimal(digits).scaleb(-scale), pos
    if letter == "F":
        return _table(data, pos, end, depth + 1, f"{where}.", read)
    if letter == "A":
        return _array(data, pos, end, depth + 1, where, read)
    if letter == "V":
        return None, pos
    raise _Malformed(f"{where}: unknown field type {letter!r}")


def _unpack(fmt: str, data: bytes, pos: int, end: int) -> tuple[Any, int]:
    size = struct.calcsize(fmt)
    if pos + size > end:
        raise _Malformed(f"cut short at byte {pos}")
    return struct.unpack_from(fmt, data, pos)[0], pos + size


def _short(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    size, pos = _unpack(">B", data, pos, end)
    limit = _within(pos, size, end, "a short string")
    return data[pos:limit], limit


def _within(pos: int, size: int, end: int, where: str) -> int:
    if pos + size > end:
        raise _Malformed(f"{where.strip() or 'a value'}: {size} bytes said, {end - pos} left")
    return pos + size


def _text(raw: bytes) -> str | bytes:
    """A long string or a key as the libraries give it: text if UTF-8, else bytes."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _quote(key: str | bytes) -> str:
    shown = repr(key)
    return shown if len(shown) <= 60 else shown[:59] + "…"


def _shortened(text: str) -> str:
    """Cut to what still fits an AMQP short string (255 bytes), for a copy to go out."""
    while len(text.encode()) > 255:
        text = text[:-1]
    return text


# ------------------------------------------------------------------------- adapters

Decoder = Callable[[Any, int], tuple[dict[str, Any], int]]


def install_amqp() -> None:
    """Wrap py-amqp's decoder of basic properties (idempotent)."""
    from amqp.serialization import PROPERTY_CLASSES
    from amqp.spec import Basic

    library: Decoder = PROPERTY_CLASSES[Basic.CLASS_ID]
    if getattr(library, "assetsync", False):
        return

    def decode_properties_basic(buf: Any, offset: int) -> tuple[dict[str, Any], int]:
        try:
            properties, end = library(buf, offset)
        except Exception:  # any bytes: read again below
            pass
        else:
            headers = properties.get("application_headers")
            if not headers or not too_deep(headers):
                return properties, end
        read = read_properties(buf, offset)
        values = dict(read.values)
        if "headers" in values:
            values["application_headers"] = values.pop("headers")
        values[PROBLEMS] = tuple(read.problems)
        return values, len(buf)

    decode_properties_basic.assetsync = True  # type: ignore[attr-defined]
    PROPERTY_CLASSES[Basic.CLASS_ID] = decode_properties_basic


def install_pika() -> None:
    """Replace pika's class of basic properties in its decoding table by one that reads
    any bytes (idempotent); the class people build properties with stays pika's."""
    import pika.spec

    library = pika.spec.props[pika.spec.BasicProperties.INDEX]
    if getattr(library, "assetsync", False):
        return

    class TolerantProperties(library):  # type: ignore[misc, valid-type]
        assetsync = True
        headers: Any
        problems: tuple[str, ...] = ()

        def decode(self, encoded: bytes, offset: int = 0) -> Any:
            try:
                done = super().decode(encoded, offset)
            except Exception:  # any bytes: read again below
                pass
            else:
                if not self.headers or not too_deep(self.headers):
                    return done
            read = read_properties(encoded, offset)
            for name, _ in PROPERTIES:
                setattr(self, name, read.values.get(name))
            if self.headers is not None:
                self.headers = _whole_floats(self.headers)
            self.problems = tuple(read.problems)
            return self

    pika.spec.props[pika.spec.BasicProperties.INDEX] = TolerantProperties


def _whole_floats(value: Any) -> Any:
    """Floats as pika reads them (whole numbers): pika cannot write a float back."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _whole_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_floats(v) for v in value]
    return value
