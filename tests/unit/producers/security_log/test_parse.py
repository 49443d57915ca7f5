"""Security-log lines -> logins, the quiet period, and the file follower, without a broker."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from producers.security_log.fold import QuietPeriod
from producers.security_log.follow import Follower, load_position, save_position
from producers.security_log.parse import Login, Skip, parse_line

# Atlassian's own examples (Jira before 9.5, Log4j 1).
PRE_95_PASSED = (
    b"2023-06-09 05:10:21,968+0000 http-nio-8080-exec-14 admin 310x2803x1 zokxj2 10.0.0.7"
    b" /rest/gadget/1.0/login The user 'admin' has PASSED authentication."
)
PRE_95_FAILED = (
    b"2023-06-09 05:11:11,681+0000 http-nio-8080-exec-17 anonymous 311x2831x1 1qvu69a"
    b" 10.0.0.7 /login.jsp The user 'admin' has FAILED authentication.  Failure count equals 1"
)
# Jira 9.5+ (Log4j2): the same columns, but empty context values leave empty columns,
# thread names may carry "url: …; user: …", and the offset may be written with a colon.
LOG4J2_PASSED = [
    b"2024-03-12 14:02:33,517+0100 http-nio-8080-exec-5 url: /rest/api/2/myself; user: jdoe"
    b" jdoe 842x1209x2 - 10.1.2.3 /rest/api/2/myself The user 'jdoe' has PASSED authentication.",
    b"2024-03-12 14:02:33,517+01:00 https-openssl-nio-443-exec-1  842x1209x2   /login.jsp"
    b" The user 'jdoe' has PASSED authentication.",
    b"2024-03-12T13:02:33.517Z Catalina-utility-1 The user 'jdoe' has PASSED authentication.",
]


def test_a_pre_95_passed_line_is_a_login_at_its_time() -> None:
    assert parse_line(PRE_95_PASSED) == Login(
        "admin", datetime(2023, 6, 9, 5, 10, 21, 968000, tzinfo=UTC)
    )


@pytest.mark.parametrize("line", LOG4J2_PASSED, ids=["thread with url", "empty columns", "iso"])
def test_log4j2_passed_lines_are_logins_at_the_same_instant(line: bytes) -> None:
    login = parse_line(line)

    assert isinstance(login, Login)
    assert login.username == "jdoe"
    assert login.at == datetime(2024, 3, 12, 13, 2, 33, 517000, tzinfo=UTC)


def test_a_line_without_an_offset_is_in_this_hosts_local_time() -> None:
    login = parse_line(b"2024-03-12 14:02:33,517 t u The user 'jdoe' has PASSED authentication.")

    assert isinstance(login, Login)
    assert login.at == datetime(2024, 3, 12, 14, 2, 33, 517000).astimezone()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (PRE_95_FAILED, Skip.FAILED),
        (PRE_95_PASSED.replace(b"'admin'", b"'anonymous'"), Skip.ANONYMOUS),
        (PRE_95_PASSED.replace(b"'admin'", b"''"), Skip.ANONYMOUS),
        (
            b"2023-06-09 05:11:11,664+0000 t anonymous 1x1x1 s 10.0.0.7 /login.jsp login : 'x'"
            b" tried to login but they do not have USE permission",
            Skip.OTHER,
        ),
        (
            b"2023-06-09 05:11:11,664+0000 t admin 1x1x1 s ip /logout The user 'admin' has been"
            b" logged out",
            Skip.OTHER,
        ),
        (b"\tat com.atlassian.seraph.Something(Something.java:42)", Skip.UNPARSABLE),
        (b"", Skip.UNPARSABLE),
        (
            b"2023-13-45 99:00:00,000+0000 t u The user 'x' has PASSED authentication.",
            Skip.UNPARSABLE,
        ),
        (
            b"2023-06-09 05:10:21,968+9900 t u The user 'x' has PASSED authentication.",
            Skip.UNPARSABLE,
        ),
        (PRE_95_PASSED.replace(b"'admin'", b"'\xff\xfe'"), Skip.UNPARSABLE),
    ],
    ids=[
        "failed",
        "anonymous",
        "empty name",
        "no permission",
        "logout",
        "stack trace",
        "empty",
        "bad date",
        "bad offset",
        "not utf-8",
    ],
)
def test_lines_that_are_not_logins_say_why(line: bytes, expected: Skip) -> None:
    assert parse_line(line) == expected


def test_names_with_quotes_and_spaces_are_kept_whole() -> None:
    line = PRE_95_PASSED.replace(b"'admin'", b"'o'brien has x' has '")

    assert parse_line(line) == Login(
        "o'brien has x' has ", datetime(2023, 6, 9, 5, 10, 21, 968000, tzinfo=UTC)
    )


# -- quiet period ---------------------------------------------------------------------------

T = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def test_one_event_per_user_per_quiet_period_by_the_logs_clock() -> None:
    quiet = QuietPeriod(interval=300)
    seen = [
        ("alice", 0),
        ("alice", 10),
        ("ALICE", 299),
        ("bob", 100),
        ("alice", 300),
        ("alice", 301),
        ("alice", 250),  # a line logged out of order, inside the period
    ]

    admitted = [quiet.admit(u, T + timedelta(seconds=s)) for u, s in seen]

    assert admitted == [True, False, False, True, True, False, False]
    assert quiet.folded == 4


def test_a_quiet_period_of_zero_publishes_every_login() -> None:
    quiet = QuietPeriod(interval=0)

    assert [quiet.admit("alice", T) for _ in range(3)] == [True, True, True]


def test_remembered_users_are_bounded() -> None:
    quiet = QuietPeriod(interval=60, max_users=100)
    for i in range(1000):
        quiet.admit(f"user{i}", T + timedelta(seconds=i))

    assert len(quiet._last) <= 100
    assert quiet.admit("user999", T + timedelta(seconds=1000)) is False  # recent: kept


# -- follower -------------------------------------------------------------------------------


def write(path: Path, data: bytes, mode: str = "ab") -> None:
    with path.open(mode) as f:
        f.write(data)


def read_all(follower: Follower) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(100):
        chunk = follower.read()
        if not chunk.lines and not chunk.oversized:
            return lines
        lines += chunk.lines
    raise AssertionError("the follower never ran dry")


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write(log, b"one\ntw", "wb")
    follower = Follower(path=log, start=None, from_start=True)

    assert read_all(follower) == [b"one"]
    write(log, b"o\r\n")
    assert read_all(follower) == [b"two"]


def test_a_line_rotated_away_without_its_newline_is_still_read(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write(log, b"one\ntwo", "wb")
    follower = Follower(path=log, start=None, from_start=True)
    assert read_all(follower) == [b"one"]

    log.rename(tmp_path / "x.log.1")
    write(log, b"three\n", "wb")

    assert read_all(follower) == [b"two", b"three"]


def test_oversized_lines_are_skipped_even_when_longer_than_a_read(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write(log, b"a\n" + b"x" * 5000 + b"\nb\n", "wb")
    follower = Follower(path=log, start=None, from_start=True, max_line=100, read_size=1000)

    chunks = [follower.read() for _ in range(10)]

    assert [ln for c in chunks for ln in c.lines] == [b"a", b"b"]
    assert sum(c.oversized for c in chunks) == 1


def test_a_new_file_that_reuses_the_inode_is_not_taken_for_the_old_one(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    state = tmp_path / "state"
    write(log, b"old line one\nold line two\n", "wb")
    follower = Follower(path=log, start=None, from_start=True)
    read_all(follower)
    save_position(state, follower.read().position)  # type: ignore[arg-type]
    follower.close()

    # Rewritten in place (same inode), different content, longer than the position.
    write(log, b"NEW LINE ONE\nNEW LINE TWO\nNEW LINE THREE\n", "r+b")
    os.truncate(log, len(b"NEW LINE ONE\nNEW LINE TWO\nNEW LINE THREE\n"))
    resumed = Follower(path=log, start=load_position(state))

    assert read_all(resumed) == [b"NEW LINE ONE", b"NEW LINE TWO", b"NEW LINE THREE"]


def test_the_saved_position_survives_as_json(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    write(log, b"a\n", "wb")
    follower = Follower(path=log, start=None, from_start=True)
    chunk = follower.read()
    assert chunk.position is not None

    save_position(tmp_path / "state", chunk.position)

    assert load_position(tmp_path / "state") == chunk.position
    assert load_position(tmp_path / "none") is None


def test_a_symlink_planted_beside_the_state_file_is_never_written_through(
    tmp_path: Path,
) -> None:
    """Seen: the state went through ``<state>.tmp`` with a plain open, so whoever could
    write the state directory could make the source overwrite any file it may write."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    state = tmp_path / "state"
    (tmp_path / "state.tmp").symlink_to(victim)
    log = tmp_path / "x.log"
    write(log, b"a\n", "wb")
    position = Follower(path=log, start=None, from_start=True).read().position
    assert position is not None

    save_position(state, position)
    state.unlink()
    state.symlink_to(victim)  # and one planted at the state file itself
    save_position(state, position)

    assert victim.read_bytes() == b"precious"
    assert not state.is_symlink() and load_position(state) == position
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "state.tmp", "victim", "x.log"]
    assert oct(state.stat().st_mode & 0o777) == "0o600"


def test_the_health_file_is_not_touched_through_a_symlink(tmp_path: Path) -> None:
    from worker import files

    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    os.utime(victim, (0, 0))
    planted = tmp_path / "assetsync-worker.alive"
    planted.symlink_to(victim)

    with pytest.raises(OSError):
        files.touch(planted)
    files.touch(tmp_path / "fresh")

    assert victim.stat().st_mtime == 0
    assert (tmp_path / "fresh").exists()
