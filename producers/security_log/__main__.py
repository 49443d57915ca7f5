"""``python -m producers.security_log PATH [--state-file FILE] [--min-interval SECONDS]``

Follows Jira Data Center's ``atlassian-jira-security.log`` (like ``tail -F``: across
rotation and truncation) and publishes a ``user-logged-in`` message, by username, for
each user who passed authentication, at most once per user per quiet period. The
position is saved after RabbitMQ confirmed what was read before it, so a restart
neither publishes again nor skips. With ``ASSETSYNC_SECURITY_LOG_LISTEN`` it answers
``GET /healthz`` (its position, counts, last login published, how far behind) and
``/metrics`` there. Runs until SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal, 1 the log or the state file cannot be read or the
status address cannot be listened on, 2 usage error, 78 a bad setting.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from producers.publisher import Publisher
from producers.security_log import endpoint
from producers.security_log.fold import QuietPeriod
from producers.security_log.follow import Follower, LogUnreadable, load_position
from producers.security_log.source import DEFAULT_MIN_INTERVAL, SecurityLogSource
from producers.security_log.status import SourceStatus
from worker.cli import EXIT_OK, Parser, configure, fail, one_line

PROG = "python -m producers.security_log"
log = logging.getLogger("producers.security_log")


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[1])
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
    settings = configure(prog)
    if args.state_file is not None:
        where = args.state_file.parent
        if not (where.is_dir() and os.access(where, os.W_OK)):
            return fail(prog, f"cannot write the state file in {where} (missing or not writable)")
    try:
        start = load_position(args.state_file) if args.state_file else None
        follower = Follower(path=args.path, start=start, from_start=args.from_start)
    except LogUnreadable as exc:
        return fail(prog, str(exc))
    if args.state_file is None:
        log.warning("no --state-file: the position is not kept; a restart starts at the end")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    url = settings.amqp_url.get_secret_value()
    status = SourceStatus(file=args.path, state_file=args.state_file, start=follower.where())
    stop_endpoint = None
    if (address := settings.security_log_address) is not None:
        try:
            stop_endpoint, port = endpoint.serve(status=status, host=address[0], port=address[1])
        except OSError as exc:
            follower.close()
            return fail(prog, f"cannot listen on {settings.security_log_listen} ({one_line(exc)})")
        shown = f"[{address[0]}]" if ":" in address[0] else address[0]
        log.info("status on http://%s:%d/healthz and /metrics", shown, port)
    source = SecurityLogSource(
        follower=follower,
        connect=lambda: Publisher(url=url, topology=settings.topology, connection_attempts=1),
        quiet=QuietPeriod(interval=args.min_interval),
        state_file=args.state_file,
        stop=stop,
        status=status,
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
        return fail(prog, one_line(exc))
    finally:
        if stop_endpoint is not None:
            stop_endpoint()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
