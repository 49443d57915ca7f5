"""The security-log source's status endpoint (``ASSETSYNC_SECURITY_LOG_LISTEN``), with a
real log it follows: the file, the position RabbitMQ confirmed, the lines read, the last
login published, and how far behind it is while the broker cannot be reached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from lab.harness import Broker, wait_for
from lab.proxy import Proxy
from tests.seclog_support import SecurityLogProcess, append, failed, minutes, passed


@pytest.fixture
def seclog(tmp_path: Path) -> Path:
    path = tmp_path / "atlassian-jira-security.log"
    append(path, passed("early", minutes(0)))  # before the source starts
    return path


@pytest.fixture
def proxy(broker: Broker) -> Iterator[Proxy]:
    parts = urlsplit(broker.url)
    with Proxy((parts.hostname or "127.0.0.1", parts.port or 5672)) as found:
        yield found


@pytest.fixture
def source(broker, proxy, seclog, tmp_path) -> Iterator[SecurityLogProcess]:
    broker.declare()
    process = SecurityLogProcess(
        amqp_url=proxy.url(broker.url),
        topology=broker.topology,
        log_path=tmp_path / "source.log",
        args=(str(seclog), "--state-file", str(tmp_path / "state.json"), "--from-start"),
        env={"ASSETSYNC_SECURITY_LOG_LISTEN": "127.0.0.1:0"},
    )
    process.log_path.write_text("")
    yield process.start()
    process.stop()


def status(source: SecurityLogProcess) -> dict:
    answer = httpx.get(source.status_url() + "/healthz", timeout=5)
    assert answer.status_code == 200
    return answer.json()


def caught_up(source: SecurityLogProcess, log_file: Path) -> dict | None:
    found = status(source)
    done = found["position"] and found["position"]["offset"] == log_file.stat().st_size
    return found if done and found["status"] == "ok" else None


def test_the_status_names_the_file_its_position_and_the_last_login_published(
    source, broker, seclog
):
    append(seclog, passed("alice", minutes(1)), failed("mallory", minutes(2)))
    found = wait_for(lambda: caught_up(source, seclog), what="the source to catch up")

    assert found["file"] == str(seclog)
    assert found["position"] == {
        "path": str(seclog),
        "inode": seclog.stat().st_ino,
        "offset": seclog.stat().st_size,
    }
    assert found["behind_bytes"] == 0 and found["broker"] == "up"
    assert (found["lines"], found["published"], found["ignored"]) == (3, 2, 1)
    assert found["last_login_at"] == minutes(1).isoformat()  # the time Jira logged
    assert found["last_published_at"] >= found["started_at"]
    assert "alice" not in json.dumps(found)  # who logged in is not the endpoint's to say
    saved = json.loads(Path(found["state_file"]).read_text())
    assert (saved["ino"], saved["offset"]) == (seclog.stat().st_ino, seclog.stat().st_size)


def test_the_status_says_how_far_behind_while_rabbitmq_cannot_be_reached(
    source, broker, proxy, seclog
):
    before = wait_for(lambda: caught_up(source, seclog), what="the source to catch up")
    proxy.refuse()
    line = passed("bob", minutes(3))
    append(seclog, line)

    behind = wait_for(
        lambda: (found := status(source))["broker"] == "down" and found, what="the retry"
    )
    assert behind["status"] == "behind"
    assert behind["behind_bytes"] == len(line) + 1  # the line and its newline
    assert behind["position"] == before["position"]  # kept until RabbitMQ confirms
    assert behind["reading"]["offset"] == seclog.stat().st_size  # read, not yet published

    proxy.restore()
    wait_for(lambda: caught_up(source, seclog), what="the source to catch up again")
    metrics = httpx.get(source.status_url() + "/metrics", timeout=5).text
    assert "assetsync_security_log_behind_bytes 0.0" in metrics
    assert 'assetsync_security_log_lines_total{outcome="published"} 2.0' in metrics
    assert "assetsync_security_log_broker_up 1.0" in metrics


def test_the_status_endpoint_is_read_only(source):
    answer = httpx.post(source.status_url() + "/healthz", timeout=5)
    assert answer.status_code == 405


def test_a_status_address_already_in_use_stops_it_with_one_line(broker, seclog, tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = SecurityLogProcess(
            amqp_url=broker.url,
            topology=broker.topology,
            log_path=tmp_path / "source.log",
            args=(str(seclog),),
            env={"ASSETSYNC_SECURITY_LOG_LISTEN": f"127.0.0.1:{port}"},
        )
        process.log_path.write_text("")
        process.start(wait=False)
        assert process.proc.wait(30) == 1
        process.stop()
    [line] = [ln for ln in process.output().splitlines() if "cannot listen" in ln]
    assert line.startswith(f"python -m producers.security_log: cannot listen on 127.0.0.1:{port}")
