"""Who gives way when slow clients crowd the receiver: a pure decision, no sockets.

Every connection is in one of five phases, each kept in the order connections entered it:

- *idle*: connected (or kept alive after an answer), nothing of a request sent yet;
- *waiting*: part of a request's headers has arrived, not all;
- *queued*: headers in, but its body does not fit the budget now: it is not read (the
  kernel holds what the client sends) until room is free;
- *receiving*: headers in, body not finished; it holds a reservation of the bytes its
  body may take (the declared ``Content-Length``, at most the receiver's body limit);
- *handling*: the whole request is in and the app works on it (waits for RabbitMQ's
  confirm); its body is still held, so its reservation stays until it is answered.

Two bounds: at most ``max_connections`` connections, and at most ``body_budget`` bytes
reserved by unfinished and handled bodies together.

When a new connection does not fit, the *oldest* connection that is waiting (else
queued, else idle, else receiving) gives way (is closed), never one being handled: a
client that stops in the middle of its headers is the first to go, one that has not
sent its first bytes yet (a delivery just connected, whose request is on its way)
nearly the last.

When a new body does not fit, the oldest unfinished bodies *larger* than it give way,
if that makes room; otherwise it is queued, and admitted (oldest first, any that fits)
as reservations are released. So a small delivery pushes out a large stalled upload,
large uploads wait for each other instead of being refused and sent again at once, and
the deadlines of the protocol end whatever waits too long. A client that sends its
request at once, as Jira does, leaves the slow phases within milliseconds with a body of
a few KiB: it is the newest there, the last to go, and the one that fits.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)
LOOK_AHEAD = 64


@dataclass
class _Slot:
    reserved: int = 0
    need: int = 0
    answered: bool = False


class SlowClientGuard(Generic[C]):
    """
    :param max_connections: connections held at most; a newcomer past it pushes out
        the oldest slow connection (waiting, else queued, else idle, else receiving).
    :param body_budget: bytes all unfinished and handled request bodies may hold
        together; at least one body's worth.
    """

    def __init__(self, *, max_connections: int, body_budget: int) -> None:
        if max_connections < 1 or body_budget < 1:
            raise ValueError("max_connections and body_budget must be positive")
        self.max_connections = max_connections
        self.body_budget = body_budget
        self.reserved = 0
        # dicts keep insertion order: the first key is the oldest in its phase.
        self._idle: dict[C, _Slot] = {}
        self._waiting: dict[C, _Slot] = {}
        self._queued: dict[C, _Slot] = {}
        self._receiving: dict[C, _Slot] = {}
        self._handling: dict[C, _Slot] = {}
        self._admitted: list[C] = []

    @property
    def connections(self) -> int:
        return sum(len(phase) for _, phase in self._phases())

    def phase(self, conn: C) -> str | None:
        for name, phase in self._phases():
            if conn in phase:
                return name
        return None

    def opened(self, conn: C) -> list[C]:
        """A new connection. Returns the connections to close now: the oldest slow ones
        when there are too many, or ``[conn]`` itself when every other one is being
        handled."""
        victims: list[C] = []
        while self.connections >= self.max_connections:
            victim = self._oldest_slow()
            if victim is None:
                return [*victims, conn]
            self.closed(victim)
            victims.append(victim)
        self._idle[conn] = _Slot()
        return victims

    def sending(self, conn: C) -> None:
        """The first bytes of ``conn``'s next request have arrived."""
        slot = self._idle.pop(conn, None)
        if slot is not None:
            self._waiting[conn] = slot

    def request(self, conn: C, body_bytes: int) -> tuple[list[C], bool]:
        """``conn``'s headers are in and its body may take ``body_bytes``. Returns the
        connections to close to make room for it, and whether it was admitted (False:
        it is queued; do not read its body until ``admitted`` names it)."""
        slot = self._take(conn)
        slot.need, slot.answered = max(0, body_bytes), False
        larger = [c for c, s in self._receiving.items() if s.reserved > slot.need]
        freeable = sum(self._receiving[c].reserved for c in larger)
        if slot.need > self._room() + freeable:
            self._queued[conn] = slot
            return [], False
        victims: list[C] = []
        for victim in larger:
            if slot.need <= self._room():
                break
            self._forget(victim)
            victims.append(victim)
        self._reserve(conn, slot)
        return victims, True

    def body_complete(self, conn: C) -> bool:
        """``conn``'s body has all arrived. True when it was answered already (it is
        idle, kept alive for its next request, now), False when the app is still working
        on it."""
        slot = self._receiving.pop(conn, None)
        if slot is None:
            return False
        if slot.answered:
            self._idle[conn] = slot
            return True
        self._handling[conn] = slot
        return False

    def answered(self, conn: C) -> bool:
        """The app answered ``conn``'s request: its body is no longer held. True when the
        connection is now idle, kept alive for its next request (False: its body is still
        arriving, to be discarded)."""
        for phase in (self._handling, self._receiving, self._queued):
            slot = phase.get(conn)
            if slot is None:
                continue
            self._release(slot)
            self._admit()
            slot.answered = True
            if phase is self._handling:
                del self._handling[conn]
                self._idle[conn] = slot
                return True
            if phase is self._queued:  # answered unread (413): let the rest arrive
                del self._queued[conn]
                self._receiving[conn] = slot
                self._admitted.append(conn)
            return False
        return conn in self._idle or conn in self._waiting

    def closed(self, conn: C) -> None:
        """``conn`` is gone (or being closed): forget it, free what it reserved."""
        if self._forget(conn):
            self._admit()

    def admitted(self) -> list[C]:
        """Queued connections admitted since the last call: read their bodies now."""
        found, self._admitted = self._admitted, []
        return found

    def _forget(self, conn: C) -> int:
        """Drop ``conn``; returns the bytes it had reserved."""
        for _, phase in self._phases():
            slot = phase.pop(conn, None)
            if slot is not None:
                freed = slot.reserved
                self._release(slot)
                return freed
        return 0

    def _take(self, conn: C) -> _Slot:
        for _, phase in self._phases():
            slot = phase.pop(conn, None)
            if slot is not None:
                self._release(slot)
                return slot
        return _Slot()

    def _room(self) -> int:
        return self.body_budget - self.reserved

    def _reserve(self, conn: C, slot: _Slot) -> None:
        slot.reserved = slot.need
        self.reserved += slot.need
        self._receiving[conn] = slot

    def _release(self, slot: _Slot) -> None:
        self.reserved -= slot.reserved
        slot.reserved = 0

    def _admit(self) -> None:
        # The oldest that fit, looking at most LOOK_AHEAD deep: under a flood the queue
        # is long and rooms free up a body at a time.
        fits = []
        room = self._room()
        for conn, slot in itertools.islice(self._queued.items(), LOOK_AHEAD):
            if room <= 0:
                break
            if slot.need <= room:
                fits.append(conn)
                room -= slot.need
        for conn in fits:
            self._reserve(conn, self._queued.pop(conn))
            self._admitted.append(conn)

    def _oldest_slow(self) -> C | None:
        for phase in (self._waiting, self._queued, self._idle, self._receiving):
            if phase:
                return next(iter(phase))
        return None

    def _phases(self) -> tuple[tuple[str, dict[C, _Slot]], ...]:
        return (
            ("idle", self._idle),
            ("waiting", self._waiting),
            ("queued", self._queued),
            ("receiving", self._receiving),
            ("handling", self._handling),
        )
