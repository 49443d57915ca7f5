"""Content headers that py-amqp and pika cannot decode, written byte by byte and
published to the real broker while two workers run: no replica stops or reconnects,
later logins sync, each message is in the dead queue with its reason, and the
dead-letter tool lists, shows, replays and purges them.

Seen on 0.2.0: a timestamp header in the year 10000 stopped both replicas within
seconds; one of 2**62 made each reconnect 21 times (py-amqp's OSError taken for a lost
connection) until RabbitMQ's delivery limit dead-lettered it."""

from __future__ import annotations

import json
import zlib

import pytest

from lab.harness import asset_of, login_body, wait_for
from tests.amqp_frames import (
    CONTENT_TYPE,
    DELIVERY_MODE,
    MESSAGE_ID,
    entry,
    json_with_headers,
    long_string,
    nested,
    properties,
    publish_frames,
    short,
    stamp,
    table,
)
from tests.integration.test_dead_letters_cli import Cli

pytestmark = pytest.mark.timeout(180)

YEAR_10000 = entry(b"when", stamp(253402300800))
# Each is a login of its own user, and each ends dead with this in its reason.
LOGINS = {
    "h-year-10000": (json_with_headers(YEAR_10000), "'when': timestamp 253402300800 is after"),
    "h-2-62": (json_with_headers(entry(b"when", stamp(2**62))), f"timestamp {2**62} is after"),
    "h-in-array": (
        json_with_headers(entry(b"log", b"A" + table(stamp(1), stamp(2**64 - 1)))),
        "header 'log'[1]: timestamp",
    ),
    "h-deep": (json_with_headers(entry(b"k", nested(5000))), "tables nested more than 16"),
    "h-deep-600": (json_with_headers(entry(b"k", nested(600))), "tables nested more than 16"),
    "h-content-type": (
        properties(CONTENT_TYPE | DELIVERY_MODE, short(b"\xffapplication/json"), b"\x02"),
        "property content_type is not UTF-8",
    ),
    "h-message-id": (
        properties(
            CONTENT_TYPE | DELIVERY_MODE | MESSAGE_ID,
            short(b"application/json"),
            b"\x02",
            short(b"\xfe\xff-id"),
        ),
        "property message_id is not UTF-8",
    ),
}


def compressed(codec: bytes) -> bytes:
    return json_with_headers(entry(b"compression", long_string(codec)))


def test_no_content_header_stops_a_replica_or_makes_it_loop(start_worker, broker, jira, database):
    topology, url = broker.topology, broker.url
    keys = {name: jira.add_user(name)["key"] for name in [*LOGINS, "after", "bogus-codec"]}
    workers = [start_worker(), start_worker()]

    for name, (props, _) in LOGINS.items():
        publish_frames(
            url,
            exchange=topology.exchange,
            routing_key="user-logged-in",
            body=login_body(username=name),
            props=props,
        )
    # kombu would decompress a body whose header names a codec: it is taken as sent.
    publish_frames(
        url,
        exchange=topology.exchange,
        routing_key="user-logged-in",
        body=login_body(username="bogus-codec"),
        props=compressed(b"no-such-codec"),
    )
    publish_frames(
        url,
        exchange=topology.exchange,
        routing_key="user-logged-in",
        body=zlib.compress(b" " * 50_000_000, 9),  # 49 KiB, 50 MB inflated
        props=compressed(b"zlib"),
    )
    # The other two loops, and a message no queue takes, which goes to the dead queue
    # as it is (the alternate exchange): there only the tool reads it.
    sync = json.dumps({"type": "user-sync", "schema_version": 1}).encode()
    bulk = json.dumps({"type": "bulk-sync-requested", "schema_version": 1}).encode()
    for routing_key, body in [("user-sync", sync), ("bulk-sync-requested", bulk), ("nope", b"")]:
        props = json_with_headers(YEAR_10000)
        publish_frames(
            url, exchange=topology.exchange, routing_key=routing_key, body=body, props=props
        )

    # Headers that fill a frame: the dead-letter copy, with its reason, would not fit
    # (RabbitMQ closes a connection that sends it). Rejected as it came instead.
    publish_frames(
        url,
        exchange=topology.exchange,
        routing_key="user-logged-in",
        body=login_body(username="nobody"),
        props=json_with_headers(entry(b"pad", long_string(b"p" * 131_000))),
    )

    broker.publish_raw(login_body(username="after"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, keys["after"]), what="a later login")
    wait_for(lambda: asset_of(database, keys["bogus-codec"]), what="as sent")
    expected = len(LOGINS) + 5
    wait_for(lambda: broker.count(topology.dead_queue) == expected, what="every dead letter")

    for worker in workers:
        assert worker.proc.poll() is None, worker.log()
        assert "broker connection lost" not in worker.log()
        assert "Traceback" not in worker.log()

    cli = Cli(broker)
    listing = json.loads(cli.run("list", "--json").stdout)
    reasons = {letter["identity"]: letter["reason"] for letter in listing["letters"]}
    for name, (_, problem) in LOGINS.items():
        assert "its AMQP header could not be read" in reasons[f"username={name}"], name
        assert problem in reasons[f"username={name}"], (name, reasons[f"username={name}"])
    bomb = [r for r in (d["reason"] for d in listing["letters"]) if "not valid JSON" in r]
    assert bomb and bomb[0].startswith("body is not valid JSON")
    by_type = {letter["type"]: letter["reason"] for letter in listing["letters"]}
    assert "its AMQP header could not be read" in by_type["user-sync"]
    assert "its AMQP header could not be read" in by_type["bulk-sync-requested"]
    assert by_type["nope"].startswith("no queue takes type 'nope'; its AMQP header could not")

    assert reasons["username=nobody"] == (
        f"rejected from {topology.login_queue} by a worker that could not copy it (its log"
        " says why)"
    )
    logged = "".join(w.log() for w in workers)
    assert "a copy cannot be written (Unwritable: its content header would take" in logged
    assert "Jira has no user with username 'nobody'" in logged

    unroutable = next(letter for letter in listing["letters"] if letter["type"] == "nope")
    shown = cli.run("show", unroutable["id"])
    assert shown.returncode == 0, shown.stderr
    assert "when: (timestamp 253402300800, after the year 9999)" in shown.stdout

    # What could not be read is a string on the copy: replayed, the logins sync.
    replayed = cli.run("replay", "--type", "user-logged-in", "--reason", "after the year 9999")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 dead letter(s)" in replayed.stdout
    for name in ("h-year-10000", "h-2-62", "h-in-array"):
        wait_for(lambda n=name: asset_of(database, keys[n]), what=f"{name} replayed")

    purged = cli.run("purge", "--all")
    assert purged.returncode == 0, purged.stderr
    assert broker.count(topology.dead_queue) == 0
    assert all(worker.proc.poll() is None for worker in workers)
