"""uvicorn's h11 protocol with the bounds it lacks against slow clients.

uvicorn has no timeout for a request's headers or body (its keep-alive timeout stops
at the first byte), and ``limit_concurrency`` counts idle connections: a thousand
clients that send one header and wait make it answer 503 to everyone else. This
subclass adds, per connection, a deadline for the headers (from connecting, or from
the previous answer) and one for the body (from the headers), and shares one
``SlowClientGuard`` that bounds the connections and the bytes all request bodies hold
(see ``guard.py`` for who gives way). It sees the request through h11's own events:
an ``h11.Connection`` whose ``next_event`` reports each event here before uvicorn
handles it. A request whose body does not fit the budget yet is not read (its
transport's reading is paused, below uvicorn's own flow control, which never paused
it) until the guard admits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from producers.webhooks.guard import SlowClientGuard

# Why a connection was closed or refused, as counted on /metrics.
HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
PUSHED_OUT = "pushed_out"
TOO_MANY = "too_many_connections"
READ_SIZE = 4 * 1024
# A request line and headers bigger than this are refused (400); Jira's are under 2 KiB,
# and each connection waiting for its headers may hold this much (h11's default: 16 KiB).
MAX_HEADER_BYTES = 8 * 1024


@dataclass(frozen=True)
class Limits:
    """
    :param header_timeout: seconds a client may take to send a request's headers.
    :param body_timeout: seconds it may then take to send the body.
    :param max_body: the largest body the app reads; a larger declared one takes no
        room (the app answers 413 without reading it).
    :param count: told the reason each time a connection is closed or refused.
    """

    header_timeout: float
    body_timeout: float
    max_body: int
    count: Callable[[str], None] = lambda reason: None


def guarded_protocol(guard: SlowClientGuard[Any], limits: Limits) -> type[H11Protocol]:
    """The protocol class to give ``uvicorn.Config(http=...)``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard, "limits": limits})


class GuardedH11Protocol(H11Protocol, asyncio.BufferedProtocol):
    guard: ClassVar[SlowClientGuard[Any]]
    limits: ClassVar[Limits]
    # asyncio reads up to 256 KiB per call into a new bytes object for a plain Protocol,
    # before anyone could decide whether that body is welcome, and h11 and uvicorn copy
    # it twice more: 600 clients sending at once held 600 such reads. As a
    # BufferedProtocol each read fills at most this one small buffer, shared (reads
    # happen one at a time on the event loop) and copied out at once; a Jira delivery
    # (headers and a body of 1-3 KiB) still takes one or two reads.
    _read_buffer: ClassVar[bytearray] = bytearray(READ_SIZE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _ObservedConnection(self._on_event, h11.SERVER, MAX_HEADER_BYTES)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        victims = self.guard.opened(self)
        self._close_all(victims, PUSHED_OUT)
        if self in victims:
            self.limits.count(TOO_MANY)
            return
        self._arm(self.limits.header_timeout, HEADER_TIMEOUT)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.guard.sending(self)
        self.data_received(bytes(memoryview(self._read_buffer)[:nbytes]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.closed(self)
        self._wake_admitted()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if self.guard.answered(self) and not self.transport.is_closing():
            self._arm(self.limits.header_timeout, HEADER_TIMEOUT)
        self._wake_admitted()
        super().on_response_complete()

    def _on_event(self, event: object) -> None:
        if isinstance(event, h11.Request):
            self._disarm()
            victims, admitted = self.guard.request(self, self._body_bytes(event))
            if not admitted:
                self.transport.pause_reading()  # until the guard admits it
            self._close_all(victims, PUSHED_OUT)
            self._arm(self.limits.body_timeout, BODY_TIMEOUT)
        elif isinstance(event, h11.EndOfMessage):
            self._disarm()
            if self.guard.body_complete(self):
                self._arm(self.limits.header_timeout, HEADER_TIMEOUT)

    def _body_bytes(self, request: h11.Request) -> int:
        """The room this request's body may take: what it declares, up to the app's
        limit; a chunked body of unknown length, the limit."""
        for name, value in request.headers:
            if name == b"content-length":
                declared = int(value)  # h11 has checked it
                return declared if declared <= self.limits.max_body else 0
        chunked = any(n == b"transfer-encoding" for n, _ in request.headers)
        return self.limits.max_body if chunked else 0

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, reason: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.limits.count(reason)
            self._close(self)
            self._wake_admitted()

    def _close_all(self, victims: list[GuardedH11Protocol], reason: str) -> None:
        for victim in victims:
            if victim is not self:
                self.limits.count(reason)
            victim._close(victim)
        self._wake_admitted()

    def _wake_admitted(self) -> None:
        for conn in self.guard.admitted():
            if not conn.transport.is_closing():
                conn.transport.resume_reading()

    @staticmethod
    def _close(conn: GuardedH11Protocol) -> None:
        conn._disarm()
        conn.guard.closed(conn)
        # abort, not close: a client that does not read would keep a close() pending.
        conn.transport.abort()


class _ObservedConnection(h11.Connection):
    """h11's connection, reporting each event it parses before handing it on."""

    def __init__(self, observe: Callable[[object], None], our_role: Any, max_bytes: int) -> None:
        super().__init__(our_role, max_incomplete_event_size=max_bytes)
        self._observe = observe

    def next_event(self) -> Any:
        event = super().next_event()
        self._observe(event)
        return event
