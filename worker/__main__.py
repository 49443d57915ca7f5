"""``python -m worker [run|migrate|check|healthcheck|rotate-key [--window SECONDS]]``
(``assetsync worker``): settings read once, the command dispatched (a replica is
composed in ``worker.replica``). Exit codes: 0 stopped cleanly, 1 a
dependency stayed unreachable, 2 usage, 78 configuration error (one line says which).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import psycopg

from worker.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, Parser, configure, say
from worker.errors import ConfigError, TransientError
from worker.replica import run
from worker.settings import Settings
from worker.store import keys
from worker.store.migrate import migrate
from worker.store.pool import translate_errors

log = logging.getLogger("worker")

PROG = "python -m worker"
COMMANDS = {
    "run": "one worker replica, until SIGTERM (the default)",
    "migrate": "create the database if needed and apply migrations",
    "check": "check the settings, the asset store and the Jira credentials, then exit",
    "healthcheck": "exit 0 when the consuming loop touched its health file recently",
    "rotate-key": "sign with a new key from now on; accept the old one for --window more",
}
DEFAULT_WINDOW = 3600.0


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = Parser(
        prog=prog,
        description="A worker replica, or one of its maintenance commands.",
        epilog="; ".join(f"{name}: {text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("command", nargs="?", default="run", choices=list(COMMANDS))
    parser.add_argument("--env-file", type=Path, help="read ASSETSYNC_* settings from this file")
    parser.add_argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW,
        metavar="SECONDS",
        help="rotate-key: how long messages signed with the old key are still accepted"
        f" (default {DEFAULT_WINDOW:.0f})",
    )
    args = parser.parse_args(argv)
    settings = configure(prog, env_file=args.env_file)
    try:
        if args.command == "migrate":
            migrate(settings.database_url.get_secret_value())
            return EXIT_OK
        if args.command == "healthcheck":
            return healthcheck(settings)
        if args.command == "rotate-key":
            return rotate_key(settings, window=args.window)
        return run(settings, check_only=args.command == "check")
    except ConfigError as exc:
        log.critical("%s", exc)
        return EXIT_CONFIG
    except TransientError as exc:
        log.critical("giving up: %s", exc)
        return EXIT_FAILED


def migrate_main(argv: list[str] | None = None, *, prog: str = "assetsync migrate") -> int:
    """``assetsync migrate``: ``python -m worker migrate`` as a command of its own."""
    parser = Parser(prog=prog, description=COMMANDS["migrate"][0].upper() + COMMANDS["migrate"][1:])
    parser.add_argument("--env-file", type=Path, help="read ASSETSYNC_* settings from this file")
    args = parser.parse_args(argv)
    rest = ["--env-file", str(args.env_file)] if args.env_file else []
    return main(["migrate", *rest], prog=prog)


def rotate_key(settings: Settings, *, window: float) -> int:
    """A new signing key for the workers (docs/security.md: rotating the signing key)."""
    if settings.signing_key is not None:
        raise ConfigError(
            "ASSETSYNC_SIGNING_KEY is set: the workers sign with that key, not the stored"
            " ones; rotate it by changing the setting (docs/security.md)"
        )
    least = 2 * settings.signing_key_refresh
    if window < least:
        raise ConfigError(
            f"--window {window:g}: at least {least:g} s (twice ASSETSYNC_SIGNING_KEY_REFRESH),"
            " so that every replica has the new key before the old one is refused"
        )
    url = settings.database_url.get_secret_value()
    with translate_errors(), psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        new, previous = keys.rotate(conn, window=window)
    say(
        f"signing key {new} is in use; messages signed with key {previous} are accepted"
        f" for {window:g} s more"
    )
    return EXIT_OK


def healthcheck(settings: Settings) -> int:
    """Exit 0 when the consuming loop has touched its health file recently."""
    path = settings.health_file
    if path is None or not path.exists():
        return EXIT_FAILED
    return EXIT_OK if time.time() - path.stat().st_mtime < 60 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
