"""Who gives way when slow clients crowd the receiver: a pure decision, no sockets.

Every connection is in one of four phases, each kept in the order connections entered it:

- *idle*: connected (or kept alive after an answer), nothing of a request sent yet;
- *waiting*: part of a request's headers has arrived, not all;
- *receiving*: headers in, body not finished; it holds a reservation of the bytes its
  body may take (the declared ``Content-Length``, at most the receiver's body limit);
- *handling*: the whole request is in and the app works on it (waits for RabbitMQ's
  confirm); its body is still held, so its reservation stays until it is answered.

Two bounds: at most ``max_connections`` connections, and at most ``body_budget`` bytes
reserved by unfinished and handled bodies together. When a new connection does not
fit, the *oldest* connection that is waiting (else idle, else receiving) gives way (is
closed), never one being handled: a client that stops in the middle of its headers is
the first to go, one that has not sent its first bytes yet (a delivery just connected,
whose request is on its way) after those. When a new body does not fit, the oldest
unfinished bodies *larger* than it give way; if that is not enough, the newcomer is
refused. A client that sends its request at once, as Jira does, leaves the slow phases
within milliseconds with a body of a few KiB, so it is the newest there, the last to
go, and the one that fits; slow clients push out only each other.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


@dataclass
class _Slot:
    reserved: int = 0
    answered: bool = False


class SlowClientGuard(Generic[C]):
    """
    :param max_connections: connections held at most; a newcomer past it pushes out
        the oldest waiting (else idle, else receiving) connection.
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
        self._receiving: dict[C, _Slot] = {}
        self._handling: dict[C, _Slot] = {}

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

    def request(self, conn: C, body_bytes: int) -> list[C] | None:
        """``conn``'s headers are in and its body may take ``body_bytes``. Returns the
        connections to close to make room, or None when there is none to make (then
        nothing was reserved or closed).

        Room is made by closing the oldest unfinished bodies that reserved *more* than
        this one needs: a small delivery pushes out a large stalled upload, but large
        uploads do not push out each other (the newcomer is refused: its bytes need
        not even be read).
        """
        slot = self._take(conn)
        need = max(0, body_bytes)
        larger = [c for c, s in self._receiving.items() if s.reserved > need]
        freeable = sum(self._receiving[c].reserved for c in larger)
        if need > self.body_budget - self.reserved + freeable:
            # Answered 503 and closed; until then the first to go (its reading stopped).
            self._waiting[conn] = slot
            return None
        victims: list[C] = []
        for victim in larger:
            if need <= self.body_budget - self.reserved:
                break
            self.closed(victim)
            victims.append(victim)
        slot.reserved, slot.answered = need, False
        self.reserved += need
        self._receiving[conn] = slot
        return victims

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
        for phase in (self._handling, self._receiving):
            slot = phase.get(conn)
            if slot is not None:
                self.reserved -= slot.reserved
                slot.reserved, slot.answered = 0, True
                if phase is self._handling:
                    del self._handling[conn]
                    self._idle[conn] = slot
                    return True
                return False
        return conn in self._idle or conn in self._waiting

    def closed(self, conn: C) -> None:
        """``conn`` is gone (or being closed): forget it, free what it reserved."""
        for _, phase in self._phases():
            slot = phase.pop(conn, None)
            if slot is not None:
                self.reserved -= slot.reserved
                return

    def _take(self, conn: C) -> _Slot:
        for _, phase in self._phases():
            slot = phase.pop(conn, None)
            if slot is not None:
                self.reserved -= slot.reserved
                return slot
        return _Slot()

    def _oldest_slow(self) -> C | None:
        for phase in (self._waiting, self._idle, self._receiving):
            if phase:
                return next(iter(phase))
        return None

    def _phases(self) -> tuple[tuple[str, dict[C, _Slot]], ...]:
        return (
            ("idle", self._idle),
            ("waiting", self._waiting),
            ("receiving", self._receiving),
            ("handling", self._handling),
        )
