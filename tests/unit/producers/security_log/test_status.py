"""What the status endpoint reports (``status.report``): the position stays where
RabbitMQ confirmed it while reading runs ahead, and the last login's times."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from producers.security_log.follow import Position
from producers.security_log.status import Counts, SourceStatus, report


def at(path: Path, offset: int) -> Position:
    """A position in ``path`` as the follower would make it (its head fingerprinted)."""
    st, head = path.stat(), path.read_bytes()[:1024]
    return Position(st.st_dev, st.st_ino, offset, len(head), hashlib.sha256(head).hexdigest())


def test_read_but_unconfirmed_lines_leave_the_source_behind(tmp_path):
    live = tmp_path / "s.log"
    live.write_bytes(b"a" * 80)
    status = SourceStatus(file=live, state_file=None, start=(live, at(live, 0)))
    status.read(live, at(live, 80), Counts(lines=2))
    found = report(status.snapshot())
    assert (found["status"], found["behind_bytes"], found["lines"]) == ("behind", 80, 2)
    assert found["position"]["offset"] == 0 and found["reading"]["offset"] == 80


def test_a_confirmed_login_moves_the_position_and_names_its_times(tmp_path):
    live = tmp_path / "s.log"
    live.write_bytes(b"a" * 80)
    status = SourceStatus(file=live, state_file=tmp_path / "state", start=None)
    assert report(status.snapshot())["status"] == "unknown"  # nothing to measure from
    logged = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    status.broker_up(True)
    status.confirmed(live, at(live, 80), counts=Counts(lines=1, published=1), last_login_at=logged)
    found = report(status.snapshot())
    assert (found["status"], found["behind_bytes"], found["published"]) == ("ok", 0, 1)
    assert found["last_login_at"] == "2026-11-29T09:00:00+00:00"
    assert found["last_published_at"] is not None and found["broker"] == "up"
    status.confirmed(live, at(live, 80), counts=Counts(lines=2, published=1), last_login_at=None)
    assert report(status.snapshot())["last_login_at"] == "2026-11-29T09:00:00+00:00"  # kept
