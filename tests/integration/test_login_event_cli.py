"""``python -m producers.login_event``: what the Jira side (or a person) runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lab.harness import ROOT


def run_cli(*args: str, amqp_url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASSETSYNC_AMQP_URL": amqp_url, "ASSETSYNC_AMQP_PREFIX": prefix}
    return subprocess.run(
        [sys.executable, "-m", "producers.login_event", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("jdoe",), {"username": "jdoe"}),
        (("--key", "JIRAUSER10100"), {"user_key": "JIRAUSER10100"}),
        (("--account-id", "5b10ac8d82e05b22cc7d4ef5"), {"account_id": "5b10ac8d82e05b22cc7d4ef5"}),
    ],
    ids=["username", "key", "account id"],
)
def test_publishes_one_confirmed_login_event(broker, args, expected):
    done = run_cli(*args, amqp_url=broker.url, prefix=broker.topology.prefix)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published user-logged-in ")
    [(body, _)] = broker.drain(broker.topology.login_queue)
    event = json.loads(body)
    assert {k: v for k, v in event.items() if k in expected} == expected
    assert event["type"] == "user-logged-in" and event["schema_version"] == 1
    assert event["event_id"] in done.stdout


@pytest.mark.parametrize("args", [(), ("jdoe", "--key", "K"), ("",)], ids=["none", "two", "empty"])
def test_usage_errors_exit_2_with_one_line(broker, args):
    done = run_cli(*args, amqp_url=broker.url, prefix=broker.topology.prefix)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1


def test_unreachable_broker_exits_1_with_one_line(broker):
    done = run_cli(
        "jdoe", amqp_url="amqp://guest:guest@127.0.0.1:1/%2F", prefix=broker.topology.prefix
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "python -m producers.login_event: cannot reach RabbitMQ at 127.0.0.1:1"
        " (AMQPConnectionError)"
    )
