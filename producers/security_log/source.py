"""The security-log source: lines read from the log -> logins parsed -> folded per user
-> published with confirms -> the position saved (``follow``, ``parse``, ``fold``)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from producers.publisher import Publisher
from producers.security_log.fold import QuietPeriod
from producers.security_log.follow import Chunk, Follower, save_position
from producers.security_log.parse import Login, Skip, parse_line
from producers.security_log.status import Counts, SourceStatus
from schemas.messages import UserLoggedIn
from worker.errors import PublishError

DEFAULT_MIN_INTERVAL = 300.0
MAX_BACKOFF = 60.0
log = logging.getLogger("producers.security_log")


class SecurityLogSource:
    """
    :param follower: the log being read.
    :param connect: opens a ``Publisher``; called again after the connection is lost.
    :param quiet: the per-user quiet period.
    :param state_file: where the position is saved; None keeps it in memory only.
    :param stop: set to stop (from a signal handler).
    :param status: what the source tells its status endpoint; None: a record of its own.
    :param poll: seconds to wait when the log has nothing new.
    :param report_every: seconds between summary lines.
    """

    def __init__(
        self,
        *,
        follower: Follower,
        connect: Callable[[], Publisher],
        quiet: QuietPeriod,
        state_file: Path | None,
        stop: threading.Event,
        status: SourceStatus | None = None,
        poll: float = 0.5,
        report_every: float = 60.0,
    ) -> None:
        self.follower = follower
        self.connect = connect
        self.quiet = quiet
        self.state_file = state_file
        self.stop = stop
        self.poll = poll
        self.report_every = report_every
        self.counts = Counts()
        self.status = status or SourceStatus(
            file=follower.path, state_file=state_file, start=follower.where()
        )
        self._publisher: Publisher | None = None
        self._reported = time.monotonic()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = self.follower.read()
                if chunk.lines or chunk.oversized:
                    self._handle(chunk)
                else:
                    if chunk.path is not None and chunk.position is not None:
                        self.status.read(chunk.path, chunk.position, self.counts)
                    self._report()
                    self.stop.wait(self.poll)
        finally:
            self.follower.close()
            if self._publisher is not None:
                self._publisher.close()
            log.info("stopped; %s", self.counts.summary())

    def _handle(self, chunk: Chunk) -> None:
        logins: list[UserLoggedIn] = []
        counts = self.counts
        counts.lines += len(chunk.lines) + chunk.oversized
        counts.unparsable += chunk.oversized
        for line in chunk.lines:
            result = parse_line(line)
            if isinstance(result, Login):
                if self.quiet.admit(result.username, result.at):
                    event = _event(result)
                    if event is None:
                        counts.unparsable += 1
                    else:
                        logins.append(event)
            elif result is Skip.UNPARSABLE:
                counts.unparsable += 1
            else:
                counts.ignored += 1
        counts.folded = self.quiet.folded
        if chunk.path is not None and chunk.position is not None:
            self.status.read(chunk.path, chunk.position, counts)
        if not self._publish_all(logins):
            return  # stopping before the broker confirmed: the position stays behind
        counts.published += len(logins)
        if chunk.position is not None:
            if self.state_file is not None:
                save_position(self.state_file, chunk.position)
            if chunk.path is not None:
                newest = max((e.occurred_at for e in logins), default=None)
                self.status.confirmed(
                    chunk.path, chunk.position, counts=counts, last_login_at=newest
                )
        self._report()

    def _publish_all(self, logins: list[UserLoggedIn]) -> bool:
        """Publish every login, reconnecting with back-off; False if stopped first."""
        backoff = 1.0
        done = 0
        while done < len(logins):
            try:
                publisher = self._connected()
                for event in logins[done:]:
                    publisher.publish(event)
                    done += 1
            except PublishError as exc:
                self.status.broker_up(False)
                if self._publisher is not None:
                    self._publisher.close()
                    self._publisher = None
                log.error("%s; retrying in %.0f s (position kept)", exc, backoff)
                if self.stop.wait(backoff):
                    return False
                backoff = min(MAX_BACKOFF, backoff * 2)
        return True

    def _connected(self) -> Publisher:
        if self._publisher is None:
            self._publisher = self.connect()
            self.status.broker_up(True)
            log.info("connected to RabbitMQ")
        return self._publisher

    def _report(self) -> None:
        if time.monotonic() - self._reported >= self.report_every:
            self._reported = time.monotonic()
            log.info("%s", self.counts.summary())


def _event(login: Login) -> UserLoggedIn | None:
    try:
        return UserLoggedIn(event_id=uuid.uuid4(), occurred_at=login.at, username=login.username)
    except ValidationError:  # e.g. a name over 255 characters
        return None
