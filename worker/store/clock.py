"""The database's clock: the one clock every replica stamps its Jira snapshots with.

Which of two snapshots of a user is newer decides which one is written
(``jira_seen_at``). Stamped with each replica's own wall clock, a replica ten minutes
ahead made every other replica's newer data lose for ten minutes (deactivations
included), and one behind had its fresh data ignored. So stamps are PostgreSQL's time.

Reading it on every stamp would cost a round trip per login and per page, and a way
to fail while the database is away. Instead one reading (``clock_timestamp()``) is
carried forward with the replica's monotonic clock, which the wall clock's steps and
skew do not touch, and taken again every ``refresh_every`` seconds. The server read its
clock before its answer reached us, so the reading plus the monotonic time since the
answer arrived is never ahead of the server's clock (up to the two clocks' drift
between readings, microseconds): a stamp never claims to be newer than the data it was
taken for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.errors import StoreUnavailable

REFRESH_EVERY = 30.0
RETRY_READ_AFTER = 5.0  # seconds after a failed reading before the next try


@dataclass(frozen=True)
class Reading:
    """The server's clock (``at``) as of ``received`` on our monotonic clock."""

    at: datetime
    received: float

    def carried_to(self, monotonic: float) -> datetime:
        return self.at + timedelta(seconds=max(0.0, monotonic - self.received))


class DatabaseClock:
    """Timestamps on the database's clock, safe to call from any thread.

    :param read: reads the server's clock (a round trip); raises ``StoreUnavailable``.
    :param refresh_every: seconds a reading is carried forward before the next one.
    :param monotonic: the replica's monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        read: Callable[[], datetime],
        *,
        refresh_every: float = REFRESH_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._refresh_every = refresh_every
        self._monotonic = monotonic
        self._reading: Reading | None = None
        self._next_read = 0.0
        self._refreshing = threading.Lock()
        self._last: datetime | None = None
        self._last_lock = threading.Lock()

    def now(self) -> datetime:
        """The database's time now, never ahead of it; never earlier than the stamp this
        clock gave before (two snapshots taken one after the other keep their order).

        :raises StoreUnavailable: the clock was never read and the database cannot be.
        """
        reading = self._reading
        if reading is None or self._monotonic() >= self._next_read:
            reading = self._refresh(reading)
        stamp = reading.carried_to(self._monotonic())
        with self._last_lock:
            if self._last is not None and stamp < self._last:
                stamp = self._last
            self._last = stamp
        return stamp

    def _refresh(self, old: Reading | None) -> Reading:
        # One thread reads; the others go on with the old reading, which is still good
        # (a database that does not answer must not hold up every stamp behind it).
        if not self._refreshing.acquire(blocking=old is None):
            assert old is not None
            return old
        try:
            current = self._reading
            if current is not None and current is not old:
                return current  # another thread read it meanwhile
            try:
                at = self._read()
            except StoreUnavailable:
                if old is None:
                    raise
                # Carried forward a while longer; not read again at every stamp.
                self._next_read = self._monotonic() + RETRY_READ_AFTER
                return old
            self._reading = Reading(at, self._monotonic())
            self._next_read = self._reading.received + self._refresh_every
            return self._reading
        finally:
            self._refreshing.release()
