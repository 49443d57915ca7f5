"""``python -m producers.security_log PATH [--state-file FILE] [--min-interval SECONDS]``

Follows Jira Data Center's ``atlassian-jira-security.log`` (like ``tail -F``: across
rotation and truncation) and publishes a ``user-logged-in`` message, by username, for
each user who passed authentication, at most once per user per quiet period. The
position is saved after RabbitMQ confirmed what was read before it, so a restart
neither publishes again nor skips. Runs until SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal, 1 the log or the state file cannot be read,
2 usage error.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from producers.cli import EXIT_OK, Parser, fail, one_line
from producers.publisher import ProducerSettings, Publisher, PublishError
from producers.seclog.fold import QuietPeriod
from producers.seclog.follow import Follower, LogUnreadable, Position, load_position, save_position
from producers.seclog.parse import Login, Skip, parse_line
from schemas.messages import UserLoggedIn

PROG = "python -m producers.security_log"
DEFAULT_MIN_INTERVAL = 300.0
MAX_BACKOFF = 60.0
log = logging.getLogger("producers.security_log")


@dataclass
class Counts:
    lines: int = 0
    published: int = 0
    folded: int = 0
    ignored: int = 0  # failed, anonymous and other lines
    unparsable: int = 0

    def summary(self) -> str:
        return (
            f"{self.lines} lines read: {self.published} logins published, {self.folded} folded"
            f" into the quiet period, {self.ignored} other lines ignored, {self.unparsable}"
            " unparsable"
        )


class SecurityLogSource:
    """
    :param follower: the log being read.
    :param connect: opens a ``Publisher``; called again after the connection is lost.
    :param quiet: the per-user quiet period.
    :param state_file: where the position is saved; None keeps it in memory only.
    :param stop: set to stop (from a signal handler).
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
        self._publisher: Publisher | None = None
        self._reported = time.monotonic()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = self.follower.read()
                if chunk.lines or chunk.oversized:
                    self._handle(chunk.lines, chunk.oversized, chunk.position)
                else:
                    self._report()
                    self.stop.wait(self.poll)
        finally:
            self.follower.close()
            if self._publisher is not None:
                self._publisher.close()
            log.info("stopped; %s", self.counts.summary())

    def _handle(self, lines: list[bytes], oversized: int, position: Position | None) -> None:
        logins: list[UserLoggedIn] = []
        counts = self.counts
        counts.lines += len(lines) + oversized
        counts.unparsable += oversized
        for line in lines:
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
        if not self._publish_all(logins):
            return  # stopping before the broker confirmed: the position stays behind
        counts.published += len(logins)
        if position is not None and self.state_file is not None:
            save_position(self.state_file, position)
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


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[1])
    parser.add_argument("path", type=Path, help="atlassian-jira-security.log")
    parser.add_argument(
        "--state-file",
        type=Path,
        help="where the read position is kept across restarts (recommended)",
    )
    parser.add_argument(
        "--min-interval",
        type=float,
        default=DEFAULT_MIN_INTERVAL,
        metavar="SECONDS",
        help=f"quiet period per user (default {DEFAULT_MIN_INTERVAL:.0f})",
    )
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="with no saved position, read the log from its start instead of its end",
    )
    args = parser.parse_args(argv)
    if args.min_interval < 0:
        parser.error("--min-interval must not be negative")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pika").setLevel(logging.WARNING)

    settings = ProducerSettings()
    if args.state_file is not None:
        where = args.state_file.parent
        if not (where.is_dir() and os.access(where, os.W_OK)):
            return fail(PROG, f"cannot write the state file in {where} (missing or not writable)")
    try:
        start = load_position(args.state_file) if args.state_file else None
        follower = Follower(path=args.path, start=start, from_start=args.from_start)
    except LogUnreadable as exc:
        return fail(PROG, str(exc))
    if args.state_file is None:
        log.warning("no --state-file: the position is not kept; a restart starts at the end")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    url = settings.amqp_url.get_secret_value()
    source = SecurityLogSource(
        follower=follower,
        connect=lambda: Publisher(url=url, topology=settings.topology, connection_attempts=1),
        quiet=QuietPeriod(interval=args.min_interval),
        state_file=args.state_file,
        stop=stop,
    )
    log.info(
        "following %s (quiet period %.0f s per user)%s",
        args.path,
        args.min_interval,
        f", position in {args.state_file}" if args.state_file else "",
    )
    try:
        source.run()
    except OSError as exc:  # e.g. the state file's directory is not writable
        return fail(PROG, one_line(exc))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
