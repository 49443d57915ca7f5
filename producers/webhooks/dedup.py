"""Recently published delivery ids, so a delivery Jira retries is published once.

Bounded in count and age: Jira retries for minutes, not days, and a receiver must not
grow without limit. With several receiver replicas a retry may reach another replica
and be published again; that is harmless (every message may arrive twice).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentDeliveries:
    """
    :param capacity: how many delivery ids are remembered at most.
    :param max_age: seconds a delivery id is remembered.
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        capacity: int = 100_000,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._max_age = max_age
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, delivery: str) -> bool:
        self._expire()
        return delivery in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, delivery: str) -> None:
        self._seen[delivery] = self._clock()
        self._seen.move_to_end(delivery)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    def _expire(self) -> None:
        oldest_kept = self._clock() - self._max_age
        while self._seen:
            delivery, at = next(iter(self._seen.items()))
            if at >= oldest_kept:
                return
            del self._seen[delivery]
