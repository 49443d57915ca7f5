"""What every command line shares: settings read once, one log setup, one-line errors
and the same exit codes (0 done, 1 failed, 2 usage, 78 settings that cannot work)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from worker import logs
from worker.errors import ConfigError
from worker.settings import Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CONFIG = os.EX_CONFIG  # 78: the deployment is wrong; no retry helps until a person acts


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def configure(prog: str, *, env_file: Path | None = None) -> Settings:
    """Every command's first step: the settings, read once, and the log setup they ask
    for (text or JSON lines on stderr, secrets masked).

    :raises SystemExit: a setting is invalid: one line naming it, exit code 78.
    """
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        sys.exit(fail(prog, str(exc), EXIT_CONFIG))
    logs.configure(settings)
    return settings


def fail(prog: str, message: str, code: int = EXIT_FAILED) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def one_line(exc: BaseException | str) -> str:
    """An error as one line: messages from libraries may span several."""
    return " ".join(str(exc).split()) or type(exc).__name__
