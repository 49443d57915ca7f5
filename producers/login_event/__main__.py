"""``python -m producers.login_event USERNAME | --key KEY | --account-id ID``

Publishes one ``user-logged-in`` event, as the Jira side does on every login. Exit code
0 when the broker confirmed it, 1 when it did not, 2 on a usage error.
"""

from __future__ import annotations

import sys

from producers.publisher import Publisher, publish_user_logged_in
from worker.cli import EXIT_OK, Parser, configure, fail, say
from worker.errors import PublishError

PROG = "python -m producers.login_event"


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = Parser(prog=prog, description="Publish a user-logged-in event.")
    parser.add_argument("username", nargs="?", help="Jira Data Center username")
    parser.add_argument("--key", help="Jira Data Center user key (stable across renames)")
    parser.add_argument("--account-id", help="Jira Cloud accountId")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    if len(given) != 1:
        parser.error("give exactly one of USERNAME, --key, --account-id")
    if not next(iter(given.values())).strip():
        parser.error("the user identifier is empty")
    settings = configure(prog)
    try:
        with Publisher(
            url=settings.amqp_url.get_secret_value(), topology=settings.topology
        ) as publisher:
            event = publish_user_logged_in(
                publisher, username=args.username, user_key=args.key, account_id=args.account_id
            )
    except PublishError as exc:
        return fail(prog, str(exc))
    say(f"published user-logged-in {event.event_id}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
