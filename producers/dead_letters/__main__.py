"""``python -m producers.dead_letters``: look at, replay or purge dead-lettered messages.

Usage::

    python -m producers.dead_letters [list] [FILTERS] [--limit N] [--json]
    python -m producers.dead_letters show ID [--bytes N] [--json]
    python -m producers.dead_letters replay (FILTERS | --all) [--dry-run] [--limit N] [--json]
    python -m producers.dead_letters purge (FILTERS | --all) [--dry-run] [--limit N] [--json]

FILTERS: ``--type TYPE`` (repeatable), ``--reason REGEX`` (searched case-insensitively),
``--id ID`` (repeatable); a message must match every filter given.

``replay`` publishes a copy of each selected message to the main exchange under its
type, waits for the broker's confirm, and only then removes the original: a crash in
between leaves the message in both places (handled twice, which every handler allows),
never in neither. The copy keeps the original's id, timestamp and headers, without the
ones recording its failure (``x-assetsync-error``, the attempt count, ``x-death``...),
so it gets the full set of retries again; the old reason goes along as
``x-assetsync-replayed-from-reason``.

Reading gives every message back that is not removed (see ``producers.dead_letters.queue``).
Exit codes: 0 done; 1 the broker could not be reached or refused, a selected message
could not be replayed, or ``show`` found no such id; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from producers.dead_letters.letters import (
    Letter,
    Selection,
    describe,
    header_values,
    preview,
    replay_headers,
)
from producers.dead_letters.output import (
    action_json,
    detail_text,
    letter_json,
    listing_text,
    summary_line,
)
from producers.dead_letters.queue import HIGH_DELIVERY_COUNT, DeadQueue, DeadQueueError, Taken
from schemas.messages import BULK_SYNC_REQUESTED
from worker.cli import EXIT_OK, Parser, configure, fail, say
from worker.text import printable

PROG = "python -m producers.dead_letters"
COMMANDS = ("list", "show", "replay", "purge")
DEFAULT_LIMIT = 1000

# ------------------------------------------------------------------------ arguments


def parser(prog: str = PROG) -> Parser:
    top = Parser(prog=prog, description="Look at, replay or purge dead-lettered messages.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser("list", help="list dead letters (the default)")
    _add_filters(listing)
    _add_limit(listing)
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    show = commands.add_parser("show", help="show one dead letter, headers and body")
    show.add_argument("id", help="its id, as `list` shows it")
    show.add_argument("--bytes", type=_positive, default=4096, help="body bytes to show")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    _add_limit(show)
    for name, verb in (("replay", "publish them again"), ("purge", "delete them")):
        acting = commands.add_parser(name, help=f"{verb}: the selected ones")
        _add_filters(acting)
        acting.add_argument("--all", action="store_true", help="select every dead letter")
        acting.add_argument("--dry-run", action="store_true", help="say what would happen")
        _add_limit(acting)
        acting.add_argument("--json", action="store_true", help="print one JSON object")
    return top


def _add_filters(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--type", action="append", default=[], help="message type (repeatable)")
    sub.add_argument("--reason", metavar="REGEX", help="reason matches (case-insensitive)")
    sub.add_argument("--id", action="append", default=[], help="message id (repeatable)")


def _add_limit(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        help=f"read at most this many messages (default {DEFAULT_LIMIT})",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def selection(top: Parser, args: argparse.Namespace) -> Selection:
    try:
        chosen = Selection.of(types=args.type, ids=args.id, reason=args.reason)
    except re.error as exc:
        top.error(f"--reason: not a regular expression: {exc}")
    if args.command in ("replay", "purge") and chosen.everything and not args.all:
        top.error(f"{args.command}: say which: --type, --reason, --id, or --all")
    if args.command in ("replay", "purge") and args.all and not chosen.everything:
        top.error("--all selects every dead letter: give it alone, or filters alone")
    return chosen


# ------------------------------------------------------------------------- commands


def list_letters(
    queue: DeadQueue, chosen: Selection, *, limit: int, as_json: bool, prog: str
) -> int:
    ready = queue.count()
    try:
        letters = [describe(t.envelope) for t in queue.take(limit)]
    finally:
        queue.release_all()
    shown = [letter for letter in letters if chosen.matches(letter)]
    now = datetime.now(UTC)
    if as_json:
        say(
            json.dumps(
                {
                    "queue": queue.topology.dead_queue,
                    "ready": ready,
                    "examined": len(letters),
                    "letters": [letter_json(letter, now) for letter in shown],
                }
            )
        )
    else:
        say(listing_text(queue.topology.dead_queue, ready, letters, shown, limit, now))
    warn_about_delivery_counts(queue, letters, prog)
    return EXIT_OK


def show_letter(
    queue: DeadQueue, wanted: str, *, limit: int, max_bytes: int, as_json: bool, prog: str
) -> int:
    queue.count()  # says so when there is no dead queue at all
    # Stops at the first match: every message read before it is given back, which
    # counts as a delivery; the fewer the better.
    examined: list[Letter] = []
    found: Taken | None = None
    for taken in queue.take(limit):
        examined.append(describe(taken.envelope))
        if examined[-1].id == wanted:
            found = taken
            break
    queue.release_all()
    warn_about_delivery_counts(queue, examined, prog)
    if found is None:
        return fail(prog, f"no dead letter {printable(wanted, 100)} among {len(examined)} read")
    letter, envelope, now = examined[-1], found.envelope, datetime.now(UTC)
    body, cut = preview(envelope.body, max_bytes)
    headers = header_values(envelope.headers)
    properties = header_values(envelope.properties)
    if as_json:
        detail = {**letter_json(letter, now), "properties": properties, "headers": headers}
        say(json.dumps({**detail, "body_preview": body, "body_truncated": cut}))
    else:
        say(detail_text(letter, now, properties, headers, body, cut, max_bytes))
    return EXIT_OK


def act(
    queue: DeadQueue,
    chosen: Selection,
    *,
    action: str,
    limit: int,
    dry_run: bool,
    as_json: bool,
    prog: str,
) -> int:
    """Replay or purge the selected dead letters; give every other one back."""
    replaying = action == "replay"
    queue.count()  # says so when there is no dead queue at all
    if replaying and not dry_run:
        queue.prepare_replay()
    verb = {"replay": "replayed", "purge": "purged"}[action]
    verb = f"would {action}" if dry_run else verb
    tell: Callable[[str], None] = (lambda line: None) if as_json else say
    done: list[Letter] = []
    kept: list[Letter] = []  # given back: not selected, not replayable, or a dry run
    skipped: list[Letter] = []
    examined = 0
    try:
        for taken in queue.take(limit):
            letter = describe(taken.envelope)
            examined += 1
            if not chosen.matches(letter):
                kept.append(letter)
                continue
            if replaying and not letter.replayable:
                skipped.append(letter)
                kept.append(letter)
                tell(f"not replayed {letter.id}: {letter.reason} (purge it instead)")
                continue
            if dry_run:
                kept.append(letter)
            else:
                if replaying:
                    queue.republish(taken, replay_headers(taken.envelope, letter.reason))
                queue.remove(taken)
            done.append(letter)
            tell(f"{verb} {letter.id}  {letter.type}  {letter.identity}".rstrip())
    finally:
        queue.release_all()
    if as_json:
        say(json.dumps(action_json(action, dry_run, examined, done, skipped, len(kept))))
    else:
        say(summary_line(action, verb, done, skipped, len(kept), queue.topology.dead_queue))
    if replaying and not dry_run and any(d.type == BULK_SYNC_REQUESTED for d in done):
        say(
            f"{prog}: note: a replayed bulk-sync-requested does not restart a run already"
            " marked failed; request a new run for that",
            file=sys.stderr,
        )
    warn_about_delivery_counts(queue, kept, prog)
    if skipped:
        return fail(prog, f"{len(skipped)} selected message(s) cannot be replayed")
    return EXIT_OK


def warn_about_delivery_counts(queue: DeadQueue, given_back: Sequence[Letter], prog: str) -> None:
    worn = [d for d in given_back if (d.delivery_count or 0) + 1 >= HIGH_DELIVERY_COUNT]
    if worn and queue.server_version >= (4,):
        say(
            f"{prog}: warning: {len(worn)} dead letter(s) have now been read and given back"
            f" {HIGH_DELIVERY_COUNT} times or more; RabbitMQ 4 drops a quorum-queue message"
            f" given back 20 times unless {queue.topology.dead_queue} has its delivery"
            " limit lifted (docs/dead-letters.md)",
            file=sys.stderr,
        )


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["list", *argv]  # listing is the common case
    top = parser(prog)
    args = top.parse_args(argv)
    chosen = selection(top, args) if args.command != "show" else Selection()
    settings = configure(prog)
    try:
        with DeadQueue(url=settings.amqp_url.get_secret_value(), topology=settings.topology) as q:
            if args.command == "list":
                return list_letters(q, chosen, limit=args.limit, as_json=args.json, prog=prog)
            if args.command == "show":
                return show_letter(
                    q, args.id, limit=args.limit, max_bytes=args.bytes, as_json=args.json, prog=prog
                )
            return act(
                q,
                chosen,
                action=args.command,
                limit=args.limit,
                dry_run=args.dry_run,
                as_json=args.json,
                prog=prog,
            )
    except DeadQueueError as exc:
        return fail(prog, str(exc))
    except KeyboardInterrupt:
        return fail(prog, "interrupted; every message not yet replayed or purged is still there")


if __name__ == "__main__":
    sys.exit(main())
