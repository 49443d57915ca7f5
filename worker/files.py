"""Writing the small files a process keeps (a source's position, a health file) in
directories others may write to as well: no name is opened that someone else could
have planted a symlink at.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old content or the new, never
    half, and never writes anywhere else.

    The temporary file is made exclusively (``O_CREAT | O_EXCL``, a random name, mode
    0600) in ``path``'s directory, so a planted ``<name>.tmp`` symlink is never followed;
    the rename replaces a symlink at ``path`` itself rather than writing through it; and
    the data, then the directory, are flushed to disk before returning.

    :raises OSError: the directory cannot be written to (nothing is left behind).
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def touch(path: Path) -> None:
    """Create ``path`` or update its time, without following a symlink at it.

    :raises OSError: it cannot be done (a symlink at ``path`` is refused: ``ELOOP``).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut (where the system allows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot, and need not
            os.fsync(fd)
    finally:
        os.close(fd)
