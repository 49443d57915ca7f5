"""``python -m producers.bulk_sync``: ask the workers to sync many Jira users at once.

Usage::

    python -m producers.bulk_sync [--prefix P] [--group G ...] [--dry-run] [--by NAME]
                                  [--wait | --json] [--timeout SECONDS]
    python -m producers.bulk_sync --unless-recent DURATION [--by NAME] [--wait | --json]
    python -m producers.bulk_sync status [RUN_ID] [--json]

The first form publishes one ``bulk-sync-requested`` message (no filter: every Jira
user) and prints ``run <id> requested``. ``--wait`` then follows the run in the asset
store, with a progress line on stderr, and prints a summary table; ``--json`` prints the
summary as one JSON object instead, and no progress. ``status`` shows one run, or the
20 most recent.

``--unless-recent DURATION`` (``20h``, ``90m``, ``1d12h``) is for schedules (cron, a
Kubernetes CronJob): it requests a run of every user only when no such run is in
progress and none ended ``done`` within DURATION; otherwise it says why in one line
and exits 0. Two schedulers at once cannot both request one
(``RunStore.request_unless_recent``).

Exit codes: 0 when the request was published (or, with ``--unless-recent``, was not
needed) and, when waiting, the run ended ``done`` with no failed user; 1 when it was
not published, the run or a user failed, waiting timed out, or the database could not
be read; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import socket
import sys
from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import ValidationError

from producers.bulk_sync.progress import (
    Progress,
    WaitTimeout,
    follow_run,
    report,
    runs_json,
    runs_table,
    summary_json,
)
from producers.durations import parse_duration, short_duration
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested, utc_now
from worker.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Parser, configure, fail, say
from worker.errors import AssetSyncError, ConfigError
from worker.store.views import Run, RunStore

PROG = "python -m producers.bulk_sync"
# Message fields as the options that set them, for usage errors.
OPTION_OF = {"username_prefix": "--prefix", "groups": "--group", "requested_by": "--by"}

# ------------------------------------------------------------------------ commands


def request_parser(prog: str = PROG) -> Parser:
    parser = Parser(
        prog=prog,
        description="Ask the workers to sync every Jira user matching the filters.",
        epilog=f"`{prog} status [RUN_ID]` shows runs.",
    )
    parser.add_argument("--prefix", metavar="TEXT", help="only usernames starting with this")
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="NAME",
        help="only members of this group (repeatable)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, but write nothing")
    parser.add_argument("--by", metavar="NAME", help="who asks (default: user@host)")
    parser.add_argument("--wait", action="store_true", help="follow the run until it ends")
    parser.add_argument("--json", action="store_true", help="wait, then print JSON only")
    parser.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="stop waiting after SECONDS"
    )
    parser.add_argument(
        "--unless-recent",
        type=_duration,
        metavar="DURATION",
        help="for schedules: request a run of every user only if none is in progress"
        " and none ended done within DURATION (e.g. 20h); else say so and exit 0",
    )
    return parser


def status_parser(prog: str = PROG) -> Parser:
    parser = Parser(prog=f"{prog} status", description="Show a sync run, or the recent ones.")
    parser.add_argument("run_id", nargs="?", type=UUID, help="the run (default: the last 20)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def request(argv: list[str], prog: str) -> int:
    parser = request_parser(prog)
    args = parser.parse_args(argv)
    waiting = args.wait or args.json
    if args.timeout is not None and not waiting:
        parser.error("--timeout needs --wait or --json")
    scheduled = args.unless_recent is not None
    if scheduled and (args.prefix is not None or args.group or args.dry_run):
        parser.error("--unless-recent requests real runs of every user: no filters, no --dry-run")
    message = build_request(parser, args)
    settings = configure(prog)
    try:
        # Open the store first: a run that cannot be followed (or, scheduled, checked and
        # recorded) had better not start.
        needs_store = waiting or scheduled
        store = RunStore(url=settings.database_url.get_secret_value()) if needs_store else None
        with store or contextlib.nullcontext():
            with Publisher(
                url=settings.amqp_url.get_secret_value(), topology=settings.topology
            ) as publisher:
                if store is not None and scheduled:
                    recent = store.request_unless_recent(
                        message,
                        within=args.unless_recent,
                        publish=lambda: publisher.publish(message),
                    )
                    if recent is not None:
                        print_not_requested(recent, args.unless_recent, as_json=args.json)
                        return EXIT_OK
                else:
                    publisher.publish(message)
            if not args.json:
                say(f"run {message.request_id} requested")
            if store is None or not waiting:
                return EXIT_OK
            return wait_and_report(
                store, message.request_id, as_json=args.json, timeout=args.timeout, prog=prog
            )
    except ConfigError as exc:
        return fail(prog, str(exc), EXIT_CONFIG)
    except AssetSyncError as exc:  # the broker or the asset store
        return fail(prog, str(exc))


def print_not_requested(run: Run, within: float, *, as_json: bool) -> None:
    """One line (or one JSON object) saying which run made a new one unnecessary."""
    now = datetime.now(UTC)
    if run.in_progress:
        since = short_duration((now - run.started_at).total_seconds())
        idle = short_duration(run.idle_s(now))
        why = (
            f"run {run.run_id} is {run.state} ({run.done}/{run.matched} done, requested"
            f" {since} ago, last progress {idle} ago)"
        )
    else:
        ended = short_duration((now - (run.finished_at or run.started_at)).total_seconds())
        why = f"run {run.run_id} ended done {ended} ago, within {short_duration(within)}"
    if as_json:
        say(json.dumps({"requested": False, "reason": why, "run": summary_json(run)}))
    else:
        say(f"not requested: {why}")


def build_request(parser: Parser, args: argparse.Namespace) -> BulkSyncRequested:
    if args.prefix is not None and not args.prefix.strip():
        parser.error("the username prefix is empty")
    if any(not group.strip() for group in args.group):
        parser.error("a group name is empty")
    try:
        return BulkSyncRequested(
            request_id=uuid4(),
            requested_at=utc_now(),
            requested_by=default_requester() if args.by is None else args.by,
            username_prefix=args.prefix,
            groups=list(dict.fromkeys(args.group)),  # the same group twice matches no more
            dry_run=args.dry_run,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = OPTION_OF.get(str(problem["loc"][0]), str(problem["loc"][0]))
        parser.error(f"{where}: {problem['msg']}")


def default_requester() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # a container user without a name
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def wait_and_report(
    store: RunStore, run_id: UUID, *, as_json: bool, timeout: float | None, prog: str
) -> int:
    progress = Progress(stream=None if as_json else sys.stderr)
    try:
        # Closed before any message below, which must not land on the progress line.
        with contextlib.closing(progress):
            run = follow_run(store, run_id, progress=progress, timeout=timeout)
    except WaitTimeout as exc:
        return fail(prog, str(exc))
    except KeyboardInterrupt:
        return fail(prog, f"stopped waiting; run {run_id} goes on (`{prog} status {run_id}`)")
    report(run, as_json=as_json, requested=run_id if as_json else None, prog=prog)
    return EXIT_OK if run.succeeded else EXIT_FAILED


def status(argv: list[str], prog: str) -> int:
    args = status_parser(prog).parse_args(argv)
    settings = configure(prog)
    try:
        with RunStore(url=settings.database_url.get_secret_value()) as store:
            if args.run_id is None:
                runs = store.recent()
                say(json.dumps(runs_json(runs)) if args.json else runs_table(runs))
                return EXIT_OK
            run = store.get(args.run_id)
    except ConfigError as exc:
        return fail(prog, str(exc), EXIT_CONFIG)
    except AssetSyncError as exc:
        return fail(prog, str(exc))
    if run is None:
        return fail(prog, f"no run {args.run_id}")
    report(run, as_json=args.json, requested=args.run_id, prog=prog)
    return EXIT_OK


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # "status" is a word of its own; anything else requests a run (the common case).
    try:
        if argv[:1] == ["status"]:
            return status(argv[1:], prog)
        return request(argv, prog)
    except KeyboardInterrupt:
        return fail(prog, "interrupted")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
