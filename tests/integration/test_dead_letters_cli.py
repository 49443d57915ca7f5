"""``python -m producers.dead_letters`` against the real broker: what an operator sees,
and what is where afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from lab.harness import ROOT, Broker, asset_of, wait_for
from producers.publisher import Publisher, publish_user_logged_in
from schemas.topology import ERROR_HEADER, Topology
from tests.policies import broker_policy

pytestmark = pytest.mark.timeout(120)

PROG = "python -m producers.dead_letters"


class Cli:
    def __init__(self, broker: Broker) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
        self.env.update(
            {
                "ASSETSYNC_AMQP_URL": broker.url,
                "ASSETSYNC_AMQP_PREFIX": broker.topology.prefix,
                "PYTHONUTF8": "1",
            }
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producers.dead_letters", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def cli(broker: Broker) -> Iterator[Cli]:
    broker.declare()
    yield Cli(broker)
    # A replay declares the topology with the default retry delays: remove those too.
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        for queue in Topology(prefix=broker.topology.prefix).queues():
            channel.queue_delete(queue.name)


def login_body(username: str) -> bytes:
    return json.dumps(
        {
            "type": "user-logged-in",
            "schema_version": 1,
            "event_id": str(uuid.uuid4()),
            "occurred_at": "2026-11-29T10:00:00Z",
            "username": username,
        }
    ).encode()


def dead_letter(
    broker: Broker,
    body: bytes,
    *,
    routing_key: str = "user-logged-in",
    reason: str | None = "Jira has no user 'nobody'",
    message_id: str | None = None,
    published: float | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """Dead-letter a message the way the worker does: a copy to the dead exchange under
    its routing key, with the reason header and the original properties."""
    message_id = message_id or str(uuid.uuid4())
    all_headers = {**(headers or {}), **({ERROR_HEADER: reason} if reason else {})}
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange=broker.topology.dead_exchange,
            routing_key=routing_key,
            body=body,
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=message_id,
                timestamp=int(published if published is not None else time.time()),
                headers=all_headers,
            ),
        )
    return message_id


def dead_bodies(broker: Broker) -> list[bytes]:
    return [body for body, _ in broker.dead_letters()]


def rows(stdout: str) -> list[list[str]]:
    """The table under the heading line, split on runs of two spaces."""
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in stdout.splitlines()[2:]]


# --------------------------------------------------------------------------- list


def test_list_shows_type_age_reason_and_identity_and_takes_nothing_away(cli, broker):
    hour_ago = time.time() - 3660
    first = dead_letter(broker, login_body("nobody"), published=hour_ago)
    broker.publish_raw(b'{"type": "user-deleted"}', routing_key="user-deleted")  # no queue
    bodies = [login_body("nobody"), b'{"type": "user-deleted"}']

    done = cli.run("list")

    assert done.returncode == 0, done.stderr
    head, columns, *_ = done.stdout.splitlines()
    assert head == f"{broker.topology.dead_queue}: 2 of 2 dead letters"
    assert columns.split() == ["ID", "TYPE", "AGE", "REASON", "IDENTITY"]
    listed = rows(done.stdout)
    assert listed[0] == [
        first,
        "user-logged-in",
        "1h01m",
        "Jira has no user 'nobody'",
        "username=nobody",
    ]
    assert listed[1][1:] == ["user-deleted", "?", "no queue takes type 'user-deleted'"]
    assert listed[1][0].startswith("sha256:")  # no message id: one made from the body
    assert [json.loads(b)["type"] for b in dead_bodies(broker)] == [
        json.loads(b)["type"] for b in bodies
    ]


def test_list_filters_and_json(cli, broker):
    dead_letter(broker, login_body("nobody"), message_id="m-1")
    dead_letter(broker, login_body("ghost"), message_id="m-2", reason="Jira answered 503")
    dead_letter(broker, login_body("jdoe"), message_id="m-3", reason="Jira answered 502")

    by_reason = cli.run("list", "--reason", "answered 50[23]", "--json")
    by_id = cli.run("--id", "m-1", "--id", "m-3")  # `list` is the default command

    assert by_reason.returncode == by_id.returncode == 0
    found = json.loads(by_reason.stdout)
    assert (found["ready"], found["examined"]) == (3, 3)
    assert [(d["id"], d["identity"]) for d in found["letters"]] == [
        ("m-2", "username=ghost"),
        ("m-3", "username=jdoe"),
    ]
    assert all(d["replayable"] and d["age_s"] >= 0 for d in found["letters"])
    assert [row[0] for row in rows(by_id.stdout)] == ["m-1", "m-3"]
    assert len(broker.dead_letters()) == 3


def test_listing_the_whole_queue_keeps_its_order(cli, broker):
    sent = [dead_letter(broker, login_body(f"user{i}")) for i in range(5)]

    for _ in range(3):
        assert cli.run("list", "--limit", "100").returncode == 0

    assert [row[0] for row in rows(cli.run("list").stdout)] == sent


def test_limit_reads_only_the_first_messages_and_says_so(cli, broker):
    for i in range(4):
        dead_letter(broker, login_body(f"user{i}"))

    done = cli.run("list", "--limit", "2")

    assert done.stdout.splitlines()[0] == (
        f"{broker.topology.dead_queue}: 2 of 2 dead letters"
        " (read the first 2 of 4; --limit to read more)"
    )
    assert broker.count(broker.topology.dead_queue) == 4


def test_empty_and_missing_dead_queues_are_one_line(cli, broker, infra):
    empty = cli.run("list")
    cli.env["ASSETSYNC_AMQP_PREFIX"] = f"never-declared-{uuid.uuid4().hex[:8]}"
    missing = cli.run("list")

    assert (empty.returncode, empty.stdout) == (0, f"{broker.topology.dead_queue} is empty\n")
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"{PROG}: there is no queue never-declared-")
    assert len(missing.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- show


def test_show_prints_headers_and_body_with_nothing_a_terminal_would_obey(cli, broker):
    hostile = b"\x1b]0;pwned\x07\x1b[2J" + "\u202e".encode() + b"A" * 100_000
    dead_letter(
        broker,
        hostile,
        message_id="evil",
        reason="body is not valid JSON\x1b[31m",
        headers={"x-note": "\x1b[5m" + "n" * 10_000},
    )

    done = cli.run("show", "evil", "--bytes", "64")

    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout and "\x07" not in done.stdout
    assert "reason:     body is not valid JSON\\x1b[31m" in done.stdout
    assert "  x-note: \\x1b[5mnnn" in done.stdout
    assert f"(the first 64 of {len(hostile)} bytes; --bytes for more)" in done.stdout
    assert len(done.stdout) < 2000
    assert dead_bodies(broker) == [hostile]


def test_show_json_and_an_unknown_id(cli, broker):
    dead_letter(broker, login_body("nobody"), message_id="m-1", headers={"x-trace": "t-7"})

    shown = cli.run("show", "m-1", "--json")
    unknown = cli.run("show", "m-404")

    detail = json.loads(shown.stdout)
    assert detail["headers"]["x-trace"] == "t-7"
    assert detail["headers"][ERROR_HEADER] == "Jira has no user 'nobody'"
    assert json.loads(detail["body_preview"])["username"] == "nobody"
    assert detail["body_truncated"] is False
    assert unknown.returncode == 1
    assert unknown.stderr == f"{PROG}: no dead letter m-404 among 1 read\n"
    assert len(broker.dead_letters()) == 1


# ------------------------------------------------------------------------- replay


def test_replay_after_the_fix_syncs_the_user(cli, broker, start_worker, jira, database):
    start_worker()
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publish_user_logged_in(publisher, username="jdoe")  # not in Jira yet
    wait_for(lambda: broker.count(broker.topology.dead_queue), what="the dead letter")
    user = jira.add_user("jdoe", display_name="Jane Doe")  # the fix

    done = cli.run("replay", "--type", "user-logged-in")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("replayed ")
    assert done.stdout.splitlines()[-1] == (
        f"replayed 1 dead letter(s) to their queues; 0 given back to {broker.topology.dead_queue}"
    )
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["fields"]["Username"] == "jdoe"
    assert broker.count(broker.topology.dead_queue) == 0


def test_replay_sends_the_selected_ones_afresh_and_gives_back_the_rest(cli, broker):
    kept = dead_letter(broker, login_body("nobody"), message_id="m-1")
    dead_letter(
        broker,
        login_body("jdoe"),
        message_id="m-2",
        reason="gave up after 6 attempts: Jira answered 503",
        headers={"x-assetsync-attempt": 6, "x-assetsync-retry-ms": "600000", "x-trace": "t-7"},
    )

    done = cli.run("replay", "--reason", "jira answered 503")

    assert done.returncode == 0, done.stderr
    [(body, headers)] = broker.drain(broker.topology.login_queue)
    assert json.loads(body)["username"] == "jdoe"
    assert headers["x-trace"] == "t-7"
    assert headers["x-assetsync-replayed-from-reason"] == (
        "gave up after 6 attempts: Jira answered 503"
    )
    assert headers["x-assetsync-replays"] == 1
    assert not {ERROR_HEADER, "x-assetsync-attempt", "x-assetsync-retry-ms"} & set(headers)
    assert [row[0] for row in rows(cli.run("list").stdout)] == [kept]


def test_replayed_copy_keeps_the_message_id_and_timestamp(cli, broker):
    published = time.time() - 600
    dead_letter(broker, login_body("jdoe"), message_id="m-9", published=published)

    assert cli.run("replay", "--id", "m-9").returncode == 0

    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        _, props, _ = conn.channel().basic_get(broker.topology.login_queue, auto_ack=True)
    assert props.message_id == "m-9"
    assert props.timestamp == int(published)
    assert props.delivery_mode == 2


def test_dry_run_says_what_would_happen_and_changes_nothing(cli, broker):
    dead_letter(broker, login_body("nobody"), message_id="m-1")

    replay = cli.run("replay", "--all", "--dry-run", "--json")
    purge = cli.run("purge", "--all", "--dry-run")

    assert json.loads(replay.stdout) == {
        "action": "replay",
        "dry_run": True,
        "examined": 1,
        "done": ["m-1"],
        "not_replayable": [],
        "given_back": 1,
    }
    assert purge.stdout.splitlines() == [
        "would purge m-1  user-logged-in  username=nobody",
        f"would purge 1 dead letter(s); 1 given back to {broker.topology.dead_queue}",
    ]
    assert broker.count(broker.topology.login_queue) == 0
    assert len(broker.dead_letters()) == 1


def test_a_message_no_queue_takes_is_not_replayed_and_stays(cli, broker):
    broker.publish_raw(b"not json", routing_key="user-deleted")

    done = cli.run("replay", "--all")

    assert done.returncode == 1
    assert done.stdout.startswith("not replayed sha256:")
    assert done.stderr == f"{PROG}: 1 selected message(s) cannot be replayed\n"
    assert dead_bodies(broker) == [b"not json"]


def test_replay_refused_by_the_broker_leaves_the_dead_letter_where_it_was(cli, broker):
    login = broker.topology.login_queue
    dead_letter(broker, login_body("jdoe"), message_id="m-1")
    broker.publish_raw(login_body("filler"), routing_key="user-logged-in")
    with broker_policy(f"{login}-full", login, {"max-length": 0}):
        done = cli.run("replay", "--all")

    assert done.returncode == 1
    assert done.stderr == f"{PROG}: RabbitMQ refused the replayed copy\n"
    assert [json.loads(b)["username"] for b in dead_bodies(broker)] == ["jdoe"]
    assert [json.loads(b)["username"] for b, _ in broker.drain(login)] == ["filler"]


# -------------------------------------------------------------------------- purge


def test_purge_removes_only_the_selected_ones(cli, broker):
    dead_letter(broker, login_body("nobody"), message_id="m-1")
    dead_letter(broker, login_body("ghost"), message_id="m-2", reason="Jira has no user 'ghost'")
    broker.publish_raw(b"junk", routing_key="user-deleted")

    done = cli.run("purge", "--type", "user-deleted", "--json")
    by_id = cli.run("purge", "--id", "m-2")

    assert done.returncode == by_id.returncode == 0
    assert json.loads(done.stdout)["done"][0].startswith("sha256:")
    assert by_id.stdout.splitlines()[0] == "purged m-2  user-logged-in  username=ghost"
    assert [json.loads(b)["username"] for b in dead_bodies(broker)] == ["nobody"]


def test_replay_and_purge_need_a_selection(cli, broker):
    dead_letter(broker, login_body("nobody"))

    for command in ("replay", "purge"):
        done = cli.run(command)
        assert done.returncode == 2
        assert done.stderr == (
            f"{PROG}: {command}: say which: --type, --reason, --id, or --all (see --help)\n"
        )
    assert len(broker.dead_letters()) == 1
