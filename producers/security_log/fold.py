"""One login event per user per quiet period.

REST clients authenticate on every request, so one user passes authentication
thousands of times an hour. A login is published when the user was not published in
the last ``interval`` seconds (by the log's own clock, so a backlog read after a
stop still yields one event per user per period, not one in all).
"""

from __future__ import annotations

from datetime import datetime, timedelta


class QuietPeriod:
    """
    :param interval: seconds during which further logins of a published user fold.
    :param max_users: users remembered at most; past that, the stalest are forgotten.
    """

    def __init__(self, *, interval: float, max_users: int = 1_000_000) -> None:
        self.interval = timedelta(seconds=interval)
        self.max_users = max_users
        self._last: dict[str, datetime] = {}
        self.folded = 0

    def admit(self, username: str, at: datetime) -> bool:
        """True when this login should be published; counts it as folded otherwise."""
        user = username.lower()  # Jira usernames ignore case
        last = self._last.get(user)
        # A line older than the last published one (threads log out of order, clocks
        # step back) is inside the period too.
        if last is not None and at - last < self.interval:
            self.folded += 1
            return False
        self._last[user] = at
        if len(self._last) > self.max_users:
            self._forget(before=at - self.interval)
        return True

    def _forget(self, *, before: datetime) -> None:
        self._last = {u: t for u, t in self._last.items() if t >= before}
        while len(self._last) > self.max_users:  # all recent: drop the oldest entries
            self._last.pop(next(iter(self._last)))
