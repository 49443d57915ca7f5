"""``python -m demo.fake_jira``: serve a fake Jira with sample users, for the demo."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import dataclass
from typing import Any, Literal

from demo.fake_jira.server import FLAVORS, FakeJira
from demo.fake_webhooks import DirectoryChanges
from worker import logs

Json = dict[str, Any]


# -- command line -----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo.fake_jira", description="Serve a fake Jira with sample users."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--flavor", choices=FLAVORS, default="datacenter")
    parser.add_argument(
        "--search-cap",
        type=int,
        default=1000,
        metavar="N",
        help="the DC user search returns only the first N matches (100: Data Center 10.0-10.2)",
    )
    parser.add_argument(
        "--no-user-list",
        action="store_true",
        help="answer 404 to /user/list, as Data Center before 10.3",
    )
    parser.add_argument("--users", type=int, default=40, help="sample people to create")
    parser.add_argument(
        "--username",
        default="admin",
        help="basic-auth user; empty means a Bearer personal access token",
    )
    parser.add_argument("--password", default="secret", help="password, API token or PAT")
    parser.add_argument(
        "--inactive-every",
        type=int,
        default=10,
        help="make every k-th sample user inactive (0: none)",
    )
    parser.add_argument(
        "--app-accounts", type=int, default=0, help="also add this many app/customer accounts"
    )
    parser.add_argument(
        "--change-every",
        type=float,
        default=0,
        metavar="SECONDS",
        help="rename a sample user every so often, so that registered webhooks fire (0: never)",
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="LOGIN:PASSWORD[:admin]",
        help="someone who signs in with their own password (the console's users); repeatable",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class _LogLevel:
    log_level: str
    log_format: Literal["text", "json"] = "text"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # The one log setup (worker.logs): its lines quote what clients send, as the product's do.
    logs.configure(_LogLevel("DEBUG" if args.verbose else "WARNING"))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    fake = FakeJira(
        flavor=args.flavor,
        username=args.username or None,
        password=args.password,
        has_user_list=not args.no_user_list,
        search_cap=args.search_cap,
        host=args.host,
        port=args.port,
    )
    fake.add_sample_users(
        args.users,
        inactive_every=args.inactive_every,
        app_accounts=args.app_accounts,
        groups={"jira-software-users": 1, "jira-administrators": 20},
    )
    for account in args.account:
        login, _, rest = account.partition(":")
        secret, _, role = rest.partition(":")
        fake.accounts.add(login, secret, administrator=role == "admin")
    with fake:
        print(f"fake Jira ({args.flavor}) with {fake.user_count} users on {fake.url}", flush=True)
        changes = DirectoryChanges(fake, every=args.change_every)
        while not stopping.wait(0.5):
            changes.tick()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
