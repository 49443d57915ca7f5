"""``python -m worker [run|migrate|check|healthcheck]``: settings read once, the command
dispatched (a replica is composed in ``worker.replica``). Exit codes: 0 stopped cleanly, 1 a
dependency stayed unreachable, 2 usage, 78 configuration error (one line says which).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from worker import logs
from worker.errors import ConfigError, TransientError
from worker.migrate import migrate
from worker.replica import run
from worker.settings import Settings, load_settings

log = logging.getLogger("worker")

EX_CONFIG = 78


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument(
        "command", nargs="?", default="run", choices=["run", "migrate", "check", "healthcheck"]
    )
    parser.add_argument("--env-file", type=Path, help="read ASSETSYNC_* settings from this file")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.env_file)
    except (ValidationError, SettingsError, FileNotFoundError) as exc:
        print(f"assetsync: {describe_settings_error(exc)}", file=sys.stderr)
        return EX_CONFIG
    logs.configure(settings)  # text or JSON lines on stderr, secrets masked
    try:
        if args.command == "migrate":
            migrate(settings.database_url.get_secret_value())
            return 0
        if args.command == "healthcheck":
            return healthcheck(settings)
        return run(settings, check_only=args.command == "check")
    except ConfigError as exc:
        log.critical("%s", exc)
        return EX_CONFIG
    except TransientError as exc:
        log.critical("giving up: %s", exc)
        return 1


def healthcheck(settings: Settings) -> int:
    """Exit 0 when the consuming loop has touched its health file recently."""
    path = settings.health_file
    if path is None or not path.exists():
        return 1
    return 0 if time.time() - path.stat().st_mtime < 60 else 1


def describe_settings_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        name = "ASSETSYNC_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        return f"invalid setting {name}: {first['msg'].removeprefix('Value error, ')}"
    if isinstance(exc, SettingsError):
        # pydantic-settings names the field only in its message; JSON is the usual culprit.
        found = re.search(r'field "(\w+)"', str(exc))
        name = "ASSETSYNC_" + found.group(1).upper() if found else "settings"
        return f"invalid setting {name}: not valid JSON"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
