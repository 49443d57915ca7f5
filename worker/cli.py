"""What the producer command lines share: one-line errors, exit codes, and ``say``, the
one way they print (nothing from outside reaches a terminal unescaped)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, TextIO

from worker.text import printable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        say(printable(f"{self.prog}: {message} (see --help)"), file=sys.stderr)
        sys.exit(EXIT_USAGE)


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
