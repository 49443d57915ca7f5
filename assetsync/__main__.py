"""``assetsync COMMAND [ARGS]``: every assetsync command behind one name.

Each command is the ``main(argv, prog=...)`` of the package that implements it, so
``assetsync sync --wait`` and ``python -m producers.bulk_sync --wait`` are one program,
with the same options, output and exit codes: 0 done, 1 failed, 2 usage, 78 settings
that cannot work (``os.EX_CONFIG``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from worker.cli import EXIT_OK, EXIT_USAGE, fail

PROG = "assetsync"


@dataclass(frozen=True)
class Command:
    """:param target: ``module:function``, a ``main(argv, prog=...) -> int``.
    :param summary: one line for ``assetsync --help``.
    """

    target: str
    summary: str

    @property
    def package(self) -> str:
        return self.target.partition(".")[0]


COMMANDS = {
    "worker": Command(
        "worker.__main__:main",
        "a worker replica (`worker check`, `worker healthcheck`, `worker rotate-key` too)",
    ),
    "migrate": Command(
        "worker.__main__:migrate_main", "create the database if needed and apply migrations"
    ),
    "sync": Command(
        "producers.bulk_sync.__main__:main", "request a bulk sync and follow it; `sync status`"
    ),
    "login": Command("producers.login_event.__main__:main", "publish a user-logged-in event"),
    "webhooks": Command(
        "producers.webhooks.__main__:main",
        "the Jira webhook receiver; `webhooks register|unregister|status` its webhook",
    ),
    "security-log": Command(
        "producers.security_log.__main__:main", "publish logins from Data Center's security log"
    ),
    "dead-letters": Command(
        "producers.dead_letters.__main__:main", "list, show, replay or purge dead letters"
    ),
    "console": Command("console.__main__:main", "the administrators' web console"),
}


def available() -> dict[str, Command]:
    """The commands this installation has (a deployment may leave the console out)."""
    return {n: c for n, c in COMMANDS.items() if importlib.util.find_spec(c.package) is not None}


def usage() -> str:
    commands = available()
    width = max(map(len, commands))
    return "\n".join(
        [
            f"usage: {PROG} COMMAND [ARGS]    ({PROG} COMMAND --help: the command's options)",
            "",
            "Keeps an asset tracker's user assets in step with Jira's users.",
            "",
            "commands:",
            *(f"  {name:<{width}}  {c.summary}" for name, c in commands.items()),
            "",
            "Settings: ASSETSYNC_* environment variables. Exit codes: 0 done, 1 failed,"
            " 2 usage, 78 settings that cannot work.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    if args[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    if args[0] == "--version":
        print(f"{PROG} {_version()}")
        return EXIT_OK
    command = available().get(args[0])
    if command is None:
        return fail(PROG, f"no command {args[0]!r} (see --help)", EXIT_USAGE)
    module, _, function = command.target.partition(":")
    run: Callable[..., int] = getattr(importlib.import_module(module), function)
    prog = f"{PROG} {args[0]}"
    if "prog" in inspect.signature(run).parameters:
        return run(args[1:], prog=prog)
    return run(args[1:])  # a command that always says its own name


def _version() -> str:
    try:
        return version("assetsync")
    except PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
