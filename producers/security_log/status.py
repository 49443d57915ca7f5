"""What the security-log source says about itself: the file it follows, where it reads,
the position RabbitMQ has confirmed everything before, its counts, when it last
published a login, and how far behind the log it is. The source's loop records, the
status endpoint (``endpoint``) reads, each from its own thread.

Nothing here names a user or holds a credential: whoever may reach the endpoint learns
how the source is doing, not who logged in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.security_log.follow import Position, bytes_behind


@dataclass
class Counts:
    """What the source has read, by outcome; the status keeps copies."""

    lines: int = 0
    published: int = 0
    folded: int = 0
    ignored: int = 0  # failed, anonymous and other lines
    unparsable: int = 0

    def summary(self) -> str:
        return (
            f"{self.lines} lines read: {self.published} logins published, {self.folded} folded"
            f" into the quiet period, {self.ignored} other lines ignored, {self.unparsable}"
            " unparsable"
        )


@dataclass(frozen=True)
class Snapshot:
    """One consistent view of the source, taken under its lock."""

    file: Path
    state_file: Path | None
    started_at: datetime
    counts: Counts
    reading: tuple[Path, Position] | None  # the file being read, and how far
    confirmed: tuple[Path, Position] | None  # everything before it is published
    confirmed_at: datetime | None  # when the confirmed position last moved
    last_published_at: datetime | None  # when RabbitMQ confirmed the last login
    last_login_at: datetime | None  # the time Jira logged for that login
    broker: bool | None  # None: not tried yet


class SourceStatus:
    """
    :param file: the live log followed.
    :param state_file: where the position is saved; None: in memory only.
    :param start: the file and position the source starts from.
    """

    def __init__(
        self, *, file: Path, state_file: Path | None, start: tuple[Path, Position] | None
    ) -> None:
        self._lock = threading.Lock()
        self._now = Snapshot(
            file=file,
            state_file=state_file,
            started_at=_utc_now(),
            counts=Counts(),
            reading=start,
            confirmed=start,
            confirmed_at=None,
            last_published_at=None,
            last_login_at=None,
            broker=None,
        )

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._now

    def read(self, path: Path, position: Position, counts: Counts) -> None:
        """Lines up to ``position`` of ``path`` were read and counted."""
        self._change(reading=(path, position), counts=replace(counts))

    def confirmed(
        self, path: Path, position: Position, *, counts: Counts, last_login_at: datetime | None
    ) -> None:
        """RabbitMQ confirmed every login before ``position``; ``last_login_at`` is the
        newest of them, None when there was none to publish."""
        now = _utc_now()
        with self._lock:
            old = self._now
            published = last_login_at is not None
            self._now = replace(
                old,
                counts=replace(counts),
                confirmed=(path, position),
                confirmed_at=now if old.confirmed != (path, position) else old.confirmed_at,
                last_published_at=now if published else old.last_published_at,
                last_login_at=last_login_at if published else old.last_login_at,
            )

    def broker_up(self, up: bool) -> None:
        self._change(broker=up)

    def _change(self, **changes: Any) -> None:
        with self._lock:
            self._now = replace(self._now, **changes)


def report(now: Snapshot) -> dict[str, Any]:
    """The status endpoint's JSON: ``status`` is ``ok`` when every byte of the log up to
    now is published (or was nothing to publish), ``behind`` otherwise, ``unknown`` when
    the log cannot be looked at."""
    behind = None if now.confirmed is None else bytes_behind(now.file, now.confirmed[1])
    return {
        "status": "unknown" if behind is None else "ok" if behind == 0 else "behind",
        "file": str(now.file),
        "state_file": None if now.state_file is None else str(now.state_file),
        "started_at": _iso(now.started_at),
        "reading": _where(now.reading),
        "position": _where(now.confirmed),
        "position_moved_at": _iso(now.confirmed_at),
        "behind_bytes": behind,
        "lines": now.counts.lines,
        "published": now.counts.published,
        "folded": now.counts.folded,
        "ignored": now.counts.ignored,
        "unparsable": now.counts.unparsable,
        "last_published_at": _iso(now.last_published_at),
        "last_login_at": _iso(now.last_login_at),
        "broker": {None: "not tried yet", True: "up", False: "down"}[now.broker],
    }


def _where(found: tuple[Path, Position] | None) -> dict[str, Any] | None:
    if found is None:
        return None
    path, position = found
    return {"path": str(path), "inode": position.ino, "offset": position.offset}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


def _utc_now() -> datetime:
    return datetime.now(UTC)
