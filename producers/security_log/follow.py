"""Follow a log file like ``tail -F``, across rotation and truncation, from a position
that survives restarts.

A position names a file by identity (device, inode) and by a fingerprint of its first
bytes (inode numbers are reused once a rotated file is deleted), plus the offset of the
first byte not yet handled. Log4j rotates by renaming (``x.log`` -> ``x.log.1`` ->
``x.log.2``) and creating a new ``x.log``; on start, and whenever the followed file is
renamed away, the rotated siblings newer than it are read in order before the new
file, so nothing written while the reader was down or busy is skipped. A file that got
shorter than the position was truncated (copy-truncate rotation) and is read from 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from worker import files
from worker.errors import PermanentError

log = logging.getLogger(__name__)

HEAD_BYTES = 1024
COMPRESSED = (".gz", ".zip", ".bz2", ".xz")


class LogUnreadable(PermanentError):
    """The log file cannot be read at all (missing at start, no permission)."""


@dataclass(frozen=True)
class Position:
    dev: int
    ino: int
    offset: int
    head_len: int
    head: str  # sha256 of the first head_len bytes

    def to_json(self) -> str:
        return json.dumps({"version": 1, **asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> Position:
        data = json.loads(text)
        return cls(**{k: data[k] for k in ("dev", "ino", "offset", "head_len", "head")})


@dataclass
class Chunk:
    """Complete lines read, and the position just after them."""

    lines: list[bytes]
    position: Position | None
    oversized: int = 0  # lines longer than the limit, skipped
    path: Path | None = None  # the file they were read from (the live one or a rotated copy)


class _Open:
    """One open file being read: its descriptor, identity and read offset."""

    def __init__(self, path: Path, fd: int, offset: int, *, final: bool) -> None:
        st = os.fstat(fd)
        self.path, self.fd, self.offset, self.final = path, fd, offset, final
        self.dev, self.ino = st.st_dev, st.st_ino
        self.head_len, self.head = _fingerprint(fd, HEAD_BYTES)
        self.skipping = False  # inside an oversized line, dropping bytes to its end

    def position(self) -> Position:
        if self.head_len < HEAD_BYTES:  # the file has grown since: fingerprint more
            self.head_len, self.head = _fingerprint(self.fd, HEAD_BYTES)
        return Position(self.dev, self.ino, self.offset, self.head_len, self.head)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Follower:
    """
    :param path: the live log file.
    :param start: where to resume; None starts at the live file's end (or its start
        with ``from_start``).
    :param max_line: longer lines are skipped and counted.
    :param read_size: bytes read per call at most.
    """

    def __init__(
        self,
        *,
        path: Path,
        start: Position | None,
        from_start: bool = False,
        max_line: int = 16 * 1024,
        read_size: int = 1024 * 1024,
    ) -> None:
        self.path = path
        self.max_line = max_line
        self.read_size = read_size
        self._queue: list[Path] = []  # rotated files to read, oldest first, before the live one
        self._current: _Open | None = None
        self._open_start(start, from_start)

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def where(self) -> tuple[Path, Position] | None:
        """The file being read and the position in it (None between two files)."""
        current = self._current
        return None if current is None else (current.path, current.position())

    def read(self) -> Chunk:
        """The next complete lines; none when there is nothing new yet."""
        oversized = 0
        while True:
            current = self._current
            if current is None:
                self._current = self._open_next()
                if self._current is None:
                    return Chunk([], None)
                continue
            data = os.pread(current.fd, self.read_size, current.offset)
            if data:
                lines, skipped = self._lines(current, data)
                oversized += skipped
                if lines or skipped:
                    return Chunk(lines, current.position(), oversized, current.path)
                if current.skipping:
                    continue  # dropping an oversized line: read on to its end
            # At the end of the file, or of its complete lines.
            if not self._moved_on(current):
                return Chunk([], current.position(), oversized, current.path)

    # -- internals ----------------------------------------------------------------------

    def _lines(self, current: _Open, data: bytes) -> tuple[list[bytes], int]:
        """Split ``data`` read at ``current.offset`` and advance past the whole lines."""
        end = data.rfind(b"\n") + 1
        if end == 0:
            if current.skipping or len(data) >= self.max_line:
                current.skipping = True  # a line with no end in sight: drop what we have
                current.offset += len(data)
            elif current.final:
                end = len(data)  # a rotated file's last line has no newline left to come
            if end == 0:
                return [], 0
        lines = data[:end].split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        current.offset += end
        skipped = 0
        if current.skipping:  # the first "line" is the tail of an oversized one
            lines.pop(0)
            current.skipping = False
            skipped += 1
        kept = [ln.rstrip(b"\r") for ln in lines if len(ln) <= self.max_line]
        return kept, skipped + len(lines) - len(kept)

    def _moved_on(self, current: _Open) -> bool:
        """At the end of ``current``: switch files if it was rotated away or truncated."""
        if current.final:
            current.close()
            self._current = None
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # between a rename and the new file: keep what we have
        except OSError as exc:
            log.warning("cannot stat %s (%s); retrying", self.path, exc)
            return False
        if (st.st_dev, st.st_ino) != (current.dev, current.ino):
            # Renamed away: finish it (what was written before the rename, a last line
            # without its newline included), then the newer rotated files, then the
            # new live file.
            log.info("%s was rotated; following the new file", self.path)
            self._queue = self._rotated_after(current.dev, current.ino)
            current.final = True
            return True
        if st.st_size < current.offset:
            log.warning("%s was truncated; reading it from the start", self.path)
            current.offset, current.skipping = 0, False
            return True
        return False

    def _open_start(self, start: Position | None, from_start: bool) -> None:
        if start is not None:
            found = self._find(start)
            if found is not None:
                path, final = found
                if path != self.path:
                    log.info("resuming in rotated file %s at byte %d", path, start.offset)
                    self._queue = self._rotated_after(start.dev, start.ino)
                self._current = self._open(path, start.offset, final=final)
                return
            log.warning(
                "the saved position's file is gone (rotated away while stopped?);"
                " reading %s from its start",
                self.path,
            )
            self._queue = []
        current = self._open(self.path, 0, final=False, required=True)
        assert current is not None
        if start is None and not from_start:
            current.offset = os.fstat(current.fd).st_size  # like tail -F: new lines only
        self._current = current

    def _open_next(self) -> _Open | None:
        while self._queue:
            path = self._queue.pop(0)
            opened = self._open(path, 0, final=True)
            if opened is not None:
                return opened
        return self._open(self.path, 0, final=False)

    def _open(
        self, path: Path, offset: int, *, final: bool, required: bool = False
    ) -> _Open | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            if required:
                raise LogUnreadable(f"{path} does not exist") from exc
            return None
        except OSError as exc:
            if required:
                raise LogUnreadable(f"cannot read {path} ({exc.strerror or exc})") from exc
            log.warning("cannot read %s (%s); retrying", path, exc.strerror or exc)
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            if required:
                raise LogUnreadable(f"{path} is not a regular file")
            return None
        return _Open(path, fd, offset, final=final)

    def _find(self, start: Position) -> tuple[Path, bool] | None:
        """The file the position is in: the live one, or a rotated sibling (final)."""
        for path in [self.path, *self._siblings()]:
            if _is(path, start):
                size = path.stat().st_size
                if size < start.offset:
                    log.warning("%s is shorter than the saved position: truncated", path)
                    return None
                return path, path != self.path
        return None

    def _siblings(self) -> list[Path]:
        return rotated_copies(self.path)

    def _rotated_after(self, dev: int, ino: int) -> list[Path]:
        siblings = self._siblings()
        for i, path in enumerate(siblings):
            with contextlib.suppress(OSError):
                st = path.stat()
                if (st.st_dev, st.st_ino) == (dev, ino):
                    return siblings[i + 1 :]
        return []


def rotated_copies(live: Path) -> list[Path]:
    """Rotated copies of the live file (``x.log.1``, ``x.log.2023-06-09``), oldest
    first; compressed ones cannot be read and are left out."""
    prefix = live.name + "."
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(live.parent):
            if entry.name.startswith(prefix) and not entry.name.endswith(COMPRESSED):
                with contextlib.suppress(OSError):
                    found.append((entry.stat().st_mtime_ns, entry.name, Path(entry.path)))
    # Same mtime (written in the same instant): a larger number is an older copy.
    found.sort(key=lambda f: (f[0], -_suffix_number(f[1])))
    return [p for _, _, p in found]


def bytes_behind(live: Path, position: Position) -> int | None:
    """Bytes of the log after ``position``, as the follower would read them: the rest of
    its file, then the rotated copies newer than it, then the live file (all of it when
    the position's file is gone). None when the live file cannot be looked at. Sizes,
    and the first KiB of a file to tell it from one that reused its inode."""
    try:
        live_size = live.stat().st_size
        left = _left_in(live, position)
    except OSError:
        return None
    if left is not None:
        return left
    behind, found = 0, False
    for path in rotated_copies(live):
        with contextlib.suppress(OSError):
            if found:
                behind += path.stat().st_size
            elif (left := _left_in(path, position)) is not None:
                behind, found = left, True
    return behind + live_size


def _left_in(path: Path, position: Position) -> int | None:
    """What is left of ``path`` after ``position`` if the position is in it, else None."""
    st = path.stat()
    if (st.st_dev, st.st_ino) != (position.dev, position.ino) or not _is(path, position):
        return None
    # Shorter than the position: truncated, and read again from its start.
    return st.st_size if st.st_size < position.offset else st.st_size - position.offset


def _is(path: Path, position: Position) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (position.dev, position.ino):
            return False
        return _fingerprint(fd, position.head_len) == (position.head_len, position.head)
    finally:
        os.close(fd)


def _fingerprint(fd: int, size: int) -> tuple[int, str]:
    head = os.pread(fd, size, 0)
    return len(head), hashlib.sha256(head).hexdigest()


def _suffix_number(name: str) -> int:
    tail = name.rpartition(".")[2]
    return int(tail) if tail.isdigit() else 0


def load_position(path: Path) -> Position | None:
    """The saved position, or None when there is none yet.

    :raises LogUnreadable: the state file exists but cannot be read or is corrupt.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LogUnreadable(f"cannot read the state file {path} ({exc.strerror or exc})") from exc
    try:
        return Position.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise LogUnreadable(
            f"the state file {path} is corrupt ({exc}); remove it to start over"
        ) from exc


def save_position(path: Path, position: Position) -> None:
    """Write atomically: a crash leaves the old position or the new one, never half, and
    a symlink planted beside it is never written through (``worker.files``)."""
    files.write_atomically(path, position.to_json().encode())
