"""How far behind the log a position is (``follow.bytes_behind``): in the live file,
in a rotated copy with newer copies after it, in a file that is gone, after truncation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from producers.security_log.follow import Position, bytes_behind


def at(path: Path, offset: int) -> Position:
    """A position in ``path`` as the follower would make it (its head fingerprinted)."""
    st, head = path.stat(), path.read_bytes()[:1024]
    return Position(st.st_dev, st.st_ino, offset, len(head), hashlib.sha256(head).hexdigest())


def write(path: Path, size: int, *, mtime: int) -> Path:
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(mtime, mtime))
    return path


def test_in_the_live_file_it_is_what_is_left_of_it(tmp_path):
    live = write(tmp_path / "s.log", 100, mtime=3)
    assert bytes_behind(live, at(live, 100)) == 0
    assert bytes_behind(live, at(live, 60)) == 40


def test_in_a_rotated_copy_the_newer_copies_and_the_live_file_count_too(tmp_path):
    oldest = write(tmp_path / "s.log.2", 50, mtime=1)
    newer = write(tmp_path / "s.log.1", 30, mtime=2)
    live = write(tmp_path / "s.log", 20, mtime=3)
    assert bytes_behind(live, at(oldest, 10)) == 40 + 30 + 20
    assert bytes_behind(live, at(newer, 30)) == 20


def test_a_position_whose_file_is_gone_is_behind_by_the_whole_live_file(tmp_path):
    gone = write(tmp_path / "old", 10, mtime=1)
    position = at(gone, 10)
    gone.unlink()
    # The new file may well get the old one's inode number: its first bytes tell them apart.
    live = tmp_path / "s.log"
    live.write_bytes(b"z" * 20)
    assert bytes_behind(live, position) == 20


def test_a_truncated_file_is_behind_by_all_it_holds(tmp_path):
    live = write(tmp_path / "s.log", 100, mtime=3)
    position = at(live, 100)
    os.truncate(live, 10)  # copy-truncate rotation: same file, shorter
    assert bytes_behind(live, position) == 10


def test_a_live_file_that_cannot_be_looked_at_is_unknown(tmp_path):
    live = write(tmp_path / "s.log", 1, mtime=1)
    position = at(live, 1)
    live.unlink()
    assert bytes_behind(live, position) is None
