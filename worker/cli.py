"""What the producer command lines share: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def fail(prog: str, message: str, code: int = EXIT_FAILED) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def one_line(exc: BaseException | str) -> str:
    """An error as one line: messages from libraries may span several."""
    return " ".join(str(exc).split()) or type(exc).__name__
