"""``python -m producers.security_log``: Jira's security log in, login events out."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lab.harness import Broker, wait_for
from lab.proxy import Proxy
from tests.seclog_support import SecurityLogProcess, append, failed, minutes, passed

Start = Callable[..., SecurityLogProcess]


@pytest.fixture
def seclog(tmp_path: Path) -> Path:
    path = tmp_path / "log" / "atlassian-jira-security.log"
    path.parent.mkdir()
    path.write_text("")
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "seclog.state"


@pytest.fixture
def start(broker: Broker, seclog: Path, state: Path, tmp_path: Path) -> Iterator[Start]:
    broker.declare()
    started: list[SecurityLogProcess] = []

    def run(
        *extra: str, amqp_url: str | None = None, wait: bool = True, state_file: Path = state
    ) -> SecurityLogProcess:
        process = SecurityLogProcess(
            amqp_url=amqp_url or broker.url,
            topology=broker.topology,
            log_path=tmp_path / "source.log",
            args=(str(seclog), "--state-file", str(state_file), "--min-interval", "300", *extra),
        )
        if not process.log_path.exists():
            process.log_path.write_text("")
        started.append(process)
        return process.start(wait=wait)

    yield run
    for process in started:
        process.stop()


def logins(broker: Broker) -> list[dict[str, Any]]:
    return [json.loads(b) for b, _ in broker.drain(broker.topology.login_queue)]


def usernames(broker: Broker, expected: int) -> list[str]:
    """Wait until ``expected`` login events arrived; return their usernames in order."""
    got: list[dict[str, Any]] = []
    wait_for(
        lambda: got.extend(logins(broker)) or len(got) >= expected,
        what=f"{expected} login events",
    )
    return [m["username"] for m in got]


def position_saved(state: Path, log_file: Path) -> bool:
    """The source has saved a position at the end of ``log_file`` (all handled)."""
    if not state.exists():
        return False
    saved = json.loads(state.read_text())
    return saved["ino"] == log_file.stat().st_ino and saved["offset"] == log_file.stat().st_size


def test_appended_passed_lines_become_login_events(start, broker, seclog):
    append(seclog, passed("old-line"))  # before the start: not read (like tail -F)
    source = start()

    append(
        seclog,
        passed("alice", minutes(1)),
        failed("mallory", minutes(1)),
        passed("anonymous", minutes(1)),
        "not a log line at all",
        "\tat com.atlassian.jira.Something(Something.java:42)",
        passed("bob", minutes(2)),
    )

    assert usernames(broker, 2) == ["alice", "bob"]
    assert source.stop() == 0
    assert "6 lines read: 2 logins published, 0 folded into the quiet period, 2 other" in (
        source.output()
    )
    assert "2 unparsable" in source.output()


def test_login_events_carry_the_time_jira_logged(start, broker, seclog):
    start()
    append(seclog, passed("alice", minutes(3)))

    wait_for(lambda: broker.count(broker.topology.login_queue) == 1, what="the event")
    [event] = logins(broker)
    assert (event["type"], event["username"], event["occurred_at"]) == (
        "user-logged-in",
        "alice",
        "2026-11-29T09:03:00Z",
    )


def test_the_quiet_period_folds_repeated_logins_per_user(start, broker, seclog):
    source = start()

    append(
        seclog,
        *(passed("alice", minutes(i / 10)) for i in range(5)),  # REST calls, seconds apart
        passed("Alice", minutes(1)),  # usernames ignore case
        passed("bob", minutes(1)),
        passed("alice", minutes(6)),  # after the 5-minute quiet period
    )

    assert usernames(broker, 3) == ["alice", "bob", "alice"]
    wait_for(lambda: position_saved(source_state(source), seclog), what="the position")
    source.stop()
    assert "8 lines read: 3 logins published, 5 folded into the quiet period" in source.output()


def source_state(source: SecurityLogProcess) -> Path:
    return Path(source.args[source.args.index("--state-file") + 1])


def test_a_restart_neither_publishes_again_nor_skips(start, broker, seclog, state):
    first = start()
    append(seclog, passed("alice", minutes(1)), passed("bob", minutes(1)))
    assert usernames(broker, 2) == ["alice", "bob"]
    wait_for(lambda: position_saved(state, seclog), what="the position")
    first.stop()

    append(seclog, passed("carol", minutes(2)))  # written while stopped
    second = start()
    append(seclog, passed("dave", minutes(3)))

    assert usernames(broker, 2) == ["carol", "dave"]
    second.stop()
    assert logins(broker) == []


def test_rotation_while_running_loses_nothing(start, broker, seclog):
    start()
    append(seclog, passed("alice", minutes(1)))
    assert usernames(broker, 1) == ["alice"]

    # Log4j's rollover: the last lines, rename to .1, a new file.
    append(seclog, passed("bob", minutes(2)))
    seclog.rename(seclog.with_name(seclog.name + ".1"))
    seclog.write_text("")
    append(seclog, passed("carol", minutes(3)))

    assert usernames(broker, 2) == ["bob", "carol"]


def test_rotations_while_stopped_are_read_from_where_it_stopped(start, broker, seclog, state):
    first = start()
    append(seclog, passed("alice", minutes(1)))
    assert usernames(broker, 1) == ["alice"]
    wait_for(lambda: position_saved(state, seclog), what="the position")
    first.stop()

    # While stopped: more lines, then two rollovers.
    append(seclog, passed("bob", minutes(2)))
    one, two = (seclog.with_name(f"{seclog.name}.{n}") for n in (1, 2))
    seclog.rename(one)
    append(seclog, passed("carol", minutes(3)))
    one.rename(two)
    seclog.rename(one)
    append(seclog, passed("dave", minutes(4)))
    start()

    assert usernames(broker, 3) == ["bob", "carol", "dave"]


def test_a_truncated_log_is_read_from_its_start(start, broker, seclog):
    start()
    append(seclog, *(passed(f"user{i}", minutes(1)) for i in range(3)))
    assert len(usernames(broker, 3)) == 3

    with seclog.open("w"):
        pass  # copytruncate
    append(seclog, passed("after", minutes(2)))

    assert usernames(broker, 1) == ["after"]


def test_broker_down_at_start_is_retried_and_the_lines_kept(start, broker, seclog, state):
    host, port = urlsplit(broker.url).hostname or "127.0.0.1", urlsplit(broker.url).port or 5672
    with Proxy((host, port)) as proxy:
        proxy.refuse()
        source = start(amqp_url=proxy.url(broker.url))
        append(seclog, passed("alice", minutes(1)))
        wait_for(lambda: "retrying in" in source.output(), what="a retry")
        assert not state.exists()  # nothing confirmed, nothing saved

        proxy.restore()
        assert usernames(broker, 1) == ["alice"]
        wait_for(lambda: position_saved(state, seclog), what="the position")
        source.stop()

    line = next(ln for ln in source.output().splitlines() if "retrying in" in ln)
    assert "cannot reach RabbitMQ at 127.0.0.1:" in line and "(position kept)" in line


@pytest.mark.parametrize("problem", ["missing", "directory", "corrupt state", "no state dir"])
def test_unreadable_inputs_exit_1_with_one_line(start, seclog, state, problem):
    if problem == "missing":
        seclog.unlink()
        expected = f"{seclog} does not exist"
    elif problem == "directory":
        seclog.unlink()
        seclog.mkdir()
        expected = f"{seclog} is not a regular file"
    elif problem == "corrupt state":
        state.write_text("{half a state")
        expected = f"the state file {state} is corrupt"
    else:
        state.parent.joinpath("gone").mkdir()
        state.parent.joinpath("gone").rmdir()
        expected = f"cannot write the state file in {state.parent / 'gone'}"
        state = state.parent / "gone" / "state"

    source = start(wait=False, state_file=state)

    assert source.proc is not None and source.proc.wait(20) == 1
    [line] = source.output().strip().splitlines()
    assert line.startswith(f"python -m producers.security_log: {expected}")


def test_overlong_lines_are_counted_and_skipped(start, broker, seclog):
    source = start()

    append(seclog, passed("x" * 20_000, minutes(1)), passed("alice", minutes(1)))

    assert usernames(broker, 1) == ["alice"]
    source.stop()
    assert "2 lines read: 1 logins published" in source.output()
    assert "1 unparsable" in source.output()


def test_from_start_reads_what_is_already_there(start, broker, seclog):
    append(seclog, passed("early", minutes(1)))

    start("--from-start")

    assert usernames(broker, 1) == ["early"]


def test_no_line_is_published_twice_while_the_log_grows_fast(start, broker, seclog, state):
    source = start("--min-interval", "0")
    for batch in range(20):
        append(seclog, *(passed(f"u{batch}-{i}", minutes(batch)) for i in range(50)))

    names = usernames(broker, 1000)
    assert len(names) == len(set(names)) == 1000
    wait_for(lambda: position_saved(state, seclog), what="the position")
    source.stop()
    assert os.path.getsize(seclog) == json.loads(state.read_text())["offset"]
