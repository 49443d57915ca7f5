"""What a dead-lettered message is, told from its routing key, properties and body: pure
functions, no broker.

Everything here reads untrusted input (a dead letter may be any bytes with any
headers): each value shown is cut to a bound and stripped of control characters, the
body is parsed only when small, and nothing raises on odd content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.messages import BULK_SYNC_REQUESTED, MODELS, USER_LOGGED_IN, USER_SYNC
from schemas.topology import ATTEMPT_HEADER, DELAY_HEADER, ERROR_HEADER, LEGACY_RETRY_HEADER
from worker.text import printable

REPLAYED_FROM_HEADER = "x-assetsync-replayed-from-reason"
REPLAYS_HEADER = "x-assetsync-replays"
# Headers that describe a past failure or delivery: a replayed message starts afresh.
FAILURE_HEADERS = frozenset(
    {
        ERROR_HEADER,
        ATTEMPT_HEADER,
        DELAY_HEADER,
        LEGACY_RETRY_HEADER,
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
        "x-acquired-count",
    }
)
MAX_SHOWN = 1000  # characters of any one value shown
MAX_PARSED_BYTES = 256 * 1024  # larger bodies are not parsed for an identity
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Envelope:
    """One delivery from the dead queue, as the broker handed it over.

    :param properties: the AMQP basic properties that were set, by name, except headers.
    :param problems: what of its content header could not be read as sent (the values
        in question are replaced by strings saying what they were:
        ``worker.content_header``).
    """

    routing_key: str
    body: bytes
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Letter:
    """What a person needs to decide about a dead letter. Every string is printable
    and bounded."""

    id: str
    type: str
    reason: str
    identity: str
    published_at: datetime | None
    body_bytes: int
    delivery_count: int | None
    replayable: bool

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.published_at is None else (now - self.published_at).total_seconds()


def describe(envelope: Envelope) -> Letter:
    headers = envelope.headers
    kind = printable(envelope.routing_key or str(envelope.properties.get("type") or ""), 100)
    return Letter(
        id=letter_id(envelope),
        type=kind,
        reason=reason_of(envelope),
        identity=identity_of(envelope.body),
        published_at=published_at(envelope),
        body_bytes=len(envelope.body),
        delivery_count=_int_or_none(headers.get("x-delivery-count")),
        replayable=envelope.routing_key in MODELS,
    )


def letter_id(envelope: Envelope) -> str:
    """The message id its publisher gave it (every assetsync producer does); otherwise
    one made from its body, so the same bytes always get the same id."""
    given = envelope.properties.get("message_id")
    if isinstance(given, str) and given and len(given) <= MAX_ID_CHARS and given.isprintable():
        return given
    return "sha256:" + hashlib.sha256(envelope.body).hexdigest()[:16]


def reason_of(envelope: Envelope) -> str:
    """Why it is dead: the worker's header, or RabbitMQ's own record, or the fact that no
    queue takes its type (the main exchange's alternate exchange sent it here); and what
    of its content header could not be read, if anything."""
    reason = _recorded_reason(envelope)
    if envelope.problems and ERROR_HEADER not in envelope.headers:
        reason += "; its AMQP header could not be read: " + "; ".join(envelope.problems)
    return printable(reason, MAX_SHOWN)


def _recorded_reason(envelope: Envelope) -> str:
    headers = envelope.headers
    error = headers.get(ERROR_HEADER)
    if error is not None:
        return _text(error)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        last = deaths[0]  # RabbitMQ keeps the most recent death first
        why, queue = _text(last.get("reason", "?")), _text(last.get("queue", "?"))
        if why == "rejected":  # workers reject only what they cannot copy
            return f"rejected from {queue} by a worker that could not copy it (its log says why)"
        return f"RabbitMQ dead-lettered it from {queue}: {why}"
    if envelope.routing_key not in MODELS:
        return f"no queue takes type {envelope.routing_key!r}"
    return "no reason recorded"


def identity_of(body: bytes) -> str:
    """Whom the message is about, when its body is a small JSON object we know."""
    if len(body) > MAX_PARSED_BYTES:
        return ""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    kind = data.get("type")
    pairs: list[tuple[str, object]] = []
    if kind == USER_LOGGED_IN:
        pairs = [(k, data.get(k)) for k in ("username", "user_key", "account_id")]
    elif kind == USER_SYNC and isinstance(data.get("user"), dict):
        user = data["user"]
        pairs = [("jira_id", user.get("jira_id")), ("name", user.get("name"))]
        pairs.append(("run", data.get("run_id")))
    elif kind == BULK_SYNC_REQUESTED:
        pairs = [("run", data.get("request_id")), ("by", data.get("requested_by"))]
    shown = [f"{k}={printable(_text(v), 80)}" for k, v in pairs if v is not None]
    return " ".join(shown)


def published_at(envelope: Envelope) -> datetime | None:
    """When it was first published (the AMQP timestamp, which retries and dead
    lettering keep), else when RabbitMQ dead-lettered it."""
    stamp = envelope.properties.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 2**37:
        return datetime.fromtimestamp(stamp, UTC)
    deaths = envelope.headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        when = deaths[0].get("time")
        if isinstance(when, datetime):
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def replay_headers(envelope: Envelope, reason: str) -> dict[str, Any]:
    """The headers a replayed copy carries: the original ones, less those recording its
    failure and deliveries (so retries and delivery limits start afresh), plus the
    reason it was dead and how often it has been replayed."""
    kept = {k: v for k, v in envelope.headers.items() if k not in FAILURE_HEADERS}
    replays = _int_or_none(envelope.headers.get(REPLAYS_HEADER)) or 0
    return {**kept, REPLAYED_FROM_HEADER: reason[:MAX_SHOWN], REPLAYS_HEADER: replays + 1}


# ------------------------------------------------------------------------ selecting


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on: those matching every filter given (any of
    the types, any of the ids, the reason pattern); no filter selects all.

    :param reason: a regular expression, searched case-insensitively in the reason.
    """

    types: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    reason: re.Pattern[str] | None = None

    @classmethod
    def of(
        cls, *, types: Iterable[str] = (), ids: Iterable[str] = (), reason: str | None = None
    ) -> Selection:
        """:raises re.error: ``reason`` is not a valid regular expression."""
        pattern = re.compile(reason, re.IGNORECASE) if reason is not None else None
        return cls(types=frozenset(types), ids=frozenset(ids), reason=pattern)

    @property
    def everything(self) -> bool:
        return not self.types and not self.ids and self.reason is None

    def matches(self, letter: Letter) -> bool:
        return (
            (not self.types or letter.type in self.types)
            and (not self.ids or letter.id in self.ids)
            and (self.reason is None or self.reason.search(letter.reason) is not None)
        )


# ------------------------------------------------------------------------- showing


def preview(body: bytes, limit: int) -> tuple[str, bool]:
    """The start of a body for a person, and whether it was cut: indented JSON, else
    text, else a hex dump (16 bytes a line)."""
    cut = len(body) > limit
    head = body[:limit]
    try:
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, 0, 1, "binary")
        text = head.decode()
    except UnicodeDecodeError as exc:
        if not (cut and exc.reason == "unexpected end of data"):
            return _hex_dump(head), cut
        text = head[: exc.start].decode(errors="replace")  # the cut split a character
    if not cut:
        with contextlib.suppress(ValueError, RecursionError):  # not JSON: as it is
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return "\n".join(printable(line, limit) for line in text.splitlines()), cut


def _hex_dump(data: bytes) -> str:
    return "\n".join(data[i : i + 16].hex(" ") for i in range(0, len(data), 16))


def header_values(headers: Mapping[str, Any], limit: int = 200) -> dict[str, str]:
    """Every header as a bounded, printable string (values may be nested tables)."""
    shown: dict[str, str] = {}
    for name, value in list(headers.items())[:100]:
        shown[printable(str(name), 100)] = printable(_text(value), limit)
    return shown


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))  # pika's "long" shows as 2L
    return value if isinstance(value, str) else repr(value)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
