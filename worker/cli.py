"""What every command line shares: settings read once, one log setup, one-line errors,
the same exit codes (0 done, 1 failed, 2 usage, 78 settings that cannot work), and
``say``, the one way they print (nothing from outside reaches a terminal unescaped)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TextIO

from worker import logs
from worker.errors import ConfigError, TransientError
from worker.settings import Settings, load_settings
from worker.text import printable

log = logging.getLogger("assetsync")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CONFIG = os.EX_CONFIG  # 78: the deployment is wrong; no retry helps until a person acts


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        say(printable(f"{self.prog}: {message} (see --help)"), file=sys.stderr)
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


def exit_code_of(body: Callable[[], int]) -> int:
    """Run a command's body and say how it ended: its own code; 78 when the settings or
    credentials cannot work (``ConfigError``); 1 when a dependency stayed unreachable
    (``TransientError``). Either failure is one log line, through the log setup."""
    try:
        return body()
    except ConfigError as exc:
        log.critical("%s", exc)
        return EXIT_CONFIG
    except TransientError as exc:
        log.critical("giving up: %s", exc)
        return EXIT_FAILED


def fail(prog: str, message: str, code: int = EXIT_FAILED) -> int:
    """Say ``message`` as one line on stderr (whatever it quotes); return ``code``."""
    say(printable(f"{prog}: {message}"), file=sys.stderr)
    return code


def say(text: str = "", *, file: TextIO | None = None) -> None:
    """Print ``text`` for a person, flushed: its lines as laid out, and every other
    control character escaped. What a command prints may quote a message, Jira or the
    database (a run's ``requested_by`` comes from any unsigned request): an escape
    sequence there could rewrite the screen or the terminal's title. A value that must
    not break a line of its own (a table cell) goes through ``worker.text.printable``."""
    lines = text.split("\n")  # split() rather than splitlines(): \r, \v, \x1c... escaped
    print("\n".join(printable(line) for line in lines), file=file or sys.stdout, flush=True)


def one_line(exc: BaseException | str) -> str:
    """An error as one line: messages from libraries may span several."""
    return " ".join(str(exc).split()) or type(exc).__name__
