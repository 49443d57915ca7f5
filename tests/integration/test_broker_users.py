"""Each component with a RabbitMQ user of its own, holding exactly the permissions
``schemas.access`` ships (the Compose definitions and docs/security.md's commands are made
from it): each works, and is refused anything else.

On the shared broker, the test makes a vhost and users of its own (names starting with
its tag), imports the shipped definitions for them with ``rabbitmqctl
import_definitions``, and deletes them afterwards; the default vhost and its users are
not touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from lab.harness import asset_of, request_bulk, wait_for, wait_run_finished
from producers.publisher import Publisher, publish_user_logged_in
from schemas.access import definitions, grants
from schemas.topology import Topology
from tests.webhook_support import ReceiverProcess, dc_event, receiver_env
from worker.errors import PublishError

TOPOLOGY = Topology()  # the shipped names: the vhost is the test's own


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def can_connect(url: str) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPError:
        return False
    return True


@pytest.fixture
def vhost() -> Iterator[dict[str, str]]:
    """component -> its AMQP URL, in a vhost of this test's own."""
    tag = uuid.uuid4().hex[:8]
    name = f"assetsync-test-{tag}"
    passwords = {g.component: uuid.uuid4().hex for g in grants()}
    shipped = definitions(passwords, vhost=name, admin=(f"t{tag}-admin", "admin-" + tag))
    for entry in shipped["users"] + shipped["permissions"] + shipped["topic_permissions"]:
        key = "name" if "password_hash" in entry else "user"
        entry[key] = f"t{tag}-{entry[key]}"
    # RabbitMQ's CLI reads the file in the broker's node: /tmp, readable (hashes only).
    with tempfile.NamedTemporaryFile("w", dir="/tmp", suffix=".json") as file:
        file.write(json.dumps(shipped))
        file.flush()
        os.chmod(file.name, 0o644)
        rabbitmqctl("import_definitions", file.name)
    urls = {
        g.component: f"amqp://t{tag}-{g.user}:{passwords[g.component]}@127.0.0.1:5672/{quote(name, safe='')}"
        for g in grants()
    }
    try:
        # The import is asynchronous: the users exist once they can log in.
        for url in urls.values():
            wait_for(lambda url=url: can_connect(url), timeout=30, what="the imported users")
        yield urls
    finally:
        for user in [u["name"] for u in shipped["users"]]:
            subprocess.run(
                ["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60
            )
        rabbitmqctl("delete_vhost", name)


def refused(url: str, action) -> bool:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        try:
            action(channel)
        except pika.exceptions.ChannelClosedByBroker as exc:
            return exc.reply_code == 403
    return False


def publish(key: str):
    return lambda ch: ch.basic_publish(TOPOLOGY.exchange, key, b"{}", mandatory=True)


def test_each_component_works_with_its_own_user_and_is_refused_the_rest(
    vhost, start_worker, jira, tmp_path
):
    jira.add_user("jdoe", key="JIRAUSER10100", display_name="Jane Doe")
    jira.add_user("asmith", key="JIRAUSER10200", display_name="Ann Smith")
    env = {"ASSETSYNC_AMQP_URL": vhost["worker"], "ASSETSYNC_AMQP_PREFIX": TOPOLOGY.prefix}

    # Producers cannot declare the topology: one before any worker is told so.
    with pytest.raises(PublishError, match="start a worker first"):
        Publisher(url=vhost["security-log"], topology=TOPOLOGY)
    worker = start_worker(env=env)  # declares everything, consumes, signs user-sync
    database = worker.env["ASSETSYNC_DATABASE_URL"]

    with Publisher(url=vhost["security-log"], topology=TOPOLOGY) as source:
        publish_user_logged_in(source, username="jdoe")
    wait_for(lambda: asset_of(database, "JIRAUSER10100"), what="the login's asset")

    receiver = ReceiverProcess(
        env=receiver_env(amqp_url=vhost["webhooks"], topology=TOPOLOGY),
        log_path=tmp_path / "receiver.log",
    ).start()
    try:
        assert (
            receiver.post(dc_event("user_updated", key="JIRAUSER10200", name="asmith")).status_code
            == 200
        )
    finally:
        receiver.stop()
    wait_for(lambda: asset_of(database, "JIRAUSER10200"), what="the webhook's asset")

    admin = type("B", (), {"url": vhost["admin"], "topology": TOPOLOGY})()
    run = wait_run_finished(database, request_bulk(admin))
    assert (run["state"], run["matched"], run["failed"]) == ("done", 2, 0)

    # Each producer may publish its own type only, and read or declare nothing.
    own = {
        "webhooks": "user-changed",
        "security-log": "user-logged-in",
        "admin": "bulk-sync-requested",
    }
    for component, key in own.items():
        url = vhost[component]
        for other in ("user-changed", "user-logged-in", "bulk-sync-requested", "user-sync"):
            assert refused(url, publish(other)) is (other != key), (component, other)
        assert refused(url, lambda ch: ch.basic_get(TOPOLOGY.login_queue))
        assert refused(url, lambda ch: ch.basic_get(TOPOLOGY.dead_queue))
        assert refused(url, lambda ch: ch.queue_declare("stolen", durable=True))
        assert refused(
            url, lambda ch: ch.exchange_declare(TOPOLOGY.exchange, "topic", durable=True)
        )
        assert refused(url, lambda ch: ch.queue_bind(TOPOLOGY.dead_queue, TOPOLOGY.exchange, "#"))
    # The workers publish per-user messages, not logins or bulk requests.
    assert refused(vhost["worker"], publish("bulk-sync-requested"))
    assert not refused(vhost["worker"], publish("user-sync"))
    # The operator reads the dead queue and replays any type, and reads no work queue.
    assert not refused(vhost["operator"], lambda ch: ch.basic_get(TOPOLOGY.dead_queue))
    assert not refused(vhost["operator"], publish("user-logged-in"))
    assert refused(vhost["operator"], lambda ch: ch.basic_get(TOPOLOGY.login_queue))
    assert worker.terminate() == 0
