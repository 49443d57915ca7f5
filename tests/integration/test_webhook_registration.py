"""``register`` / ``unregister`` / ``status`` against the fake Jira's webhook resource,
and the fake Jira's own signed deliveries reaching the queue through the receiver."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.fake_jira import FakeJira
from demo.fake_webhooks import DirectoryChanges
from lab.harness import ROOT, Broker, wait_for
from tests.webhook_support import SECRET, ReceiverProcess, receiver_env

PROG = "python -m producers.jira_webhooks"
PUBLIC_URL = "https://hooks.example.com/webhooks/jira"


def cli(
    *args: str, jira: FakeJira, secret: str | None = SECRET, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    full.update(
        ASSETSYNC_JIRA_URL=jira.url, ASSETSYNC_JIRA_USERNAME="admin", ASSETSYNC_JIRA_TOKEN="secret"
    )
    if secret is not None:
        full["ASSETSYNC_WEBHOOK_SECRET"] = secret
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "producers.jira_webhooks", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_register_creates_the_webhook_with_the_user_events_and_the_secret(jira):
    done = cli("register", "--url", PUBLIC_URL, jira=jira)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created webhook 'assetsync users' (id 1, enabled)")
    [hook] = jira.webhooks.hooks()
    assert (hook["name"], hook["url"], hook["secret"]) == ("assetsync users", PUBLIC_URL, SECRET)
    assert sorted(hook["events"]) == ["user_created", "user_deleted", "user_updated"]


def test_register_again_updates_the_same_webhook(jira):
    cli("register", "--url", "https://old.example.com/webhooks/jira", jira=jira)

    done = cli("register", "--url", PUBLIC_URL, jira=jira, secret="rotated")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updated webhook 'assetsync users' (id 1, enabled)")
    [hook] = jira.webhooks.hooks()
    assert (hook["url"], hook["secret"]) == (PUBLIC_URL, "rotated")


def test_a_bare_host_gets_the_receivers_path(jira):
    cli("register", "--url", "https://hooks.example.com", jira=jira)

    assert [h["url"] for h in jira.webhooks.hooks()] == [PUBLIC_URL]


def test_status_shows_the_webhook_and_unregister_removes_it(jira):
    cli("register", "--url", PUBLIC_URL, jira=jira)

    shown = cli("status", jira=jira)
    removed = cli("unregister", jira=jira)
    gone = cli("status", jira=jira)
    again = cli("unregister", jira=jira)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == (
        f"'assetsync users' (id 1, enabled) -> {PUBLIC_URL}"
        " for user_created, user_deleted, user_updated"
    )
    assert removed.returncode == 0 and removed.stdout.startswith(
        "deleted webhook 'assetsync users'"
    )
    assert jira.webhooks.hooks() == []
    assert gone.returncode == 1
    assert gone.stderr.strip() == (
        f"{PROG}: no webhook named 'assetsync users' in Jira (run `register --url URL`)"
    )
    assert again.returncode == 0 and "nothing to delete" in again.stdout


def test_other_webhooks_are_left_alone(jira):
    jira.webhooks.register("https://ci.example.com/hook", name="CI", events=("jira:issue_updated",))

    cli("register", "--url", PUBLIC_URL, jira=jira)
    cli("unregister", jira=jira)

    assert [h["name"] for h in jira.webhooks.hooks()] == ["CI"]


def test_a_non_administrator_gets_one_clear_line(jira):
    jira.webhooks.admin = False

    done = cli("register", "--url", PUBLIC_URL, jira=jira)

    assert done.returncode == 78
    assert done.stderr.strip() == (
        f"{PROG}: Jira answered 403 to /rest/webhooks/1.0/webhook: check"
        " ASSETSYNC_JIRA_USERNAME/ASSETSYNC_JIRA_TOKEN and that the account may manage"
        " webhooks (the Jira administrators global permission)"
    )


def test_wrong_credentials_get_one_clear_line(jira):
    done = cli("status", jira=jira, ASSETSYNC_JIRA_TOKEN="wrong")

    assert done.returncode == 78
    assert done.stderr.strip().startswith(
        f"{PROG}: Jira answered 401 to /rest/webhooks/1.0/webhook: check"
        " ASSETSYNC_JIRA_USERNAME/ASSETSYNC_JIRA_TOKEN"
    )


def test_register_refuses_an_unsigned_webhook_unless_insecure(jira):
    refused = cli("register", "--url", PUBLIC_URL, jira=jira, secret=None)
    allowed = cli(
        "register", "--url", PUBLIC_URL, jira=jira, secret=None, ASSETSYNC_WEBHOOK_INSECURE="true"
    )

    assert refused.returncode == 78 and "ASSETSYNC_WEBHOOK_SECRET is not set" in refused.stderr
    assert allowed.returncode == 0 and allowed.stdout.strip().endswith("UNSIGNED")
    assert [h["secret"] for h in jira.webhooks.hooks()] == [None]


def test_unreachable_jira_gets_one_clear_line(jira):
    done = cli("status", jira=jira, ASSETSYNC_JIRA_URL="http://127.0.0.1:1")

    assert done.returncode == 1
    assert done.stderr.startswith(f"{PROG}: cannot reach Jira: ")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flavor", ["datacenter", "cloud"])
def test_registered_jira_deliveries_reach_the_login_queue(
    broker: Broker, receiver: ReceiverProcess, flavor: str
):
    with FakeJira(flavor=flavor) as jira:
        done = cli("register", "--url", receiver.url, jira=jira)
        assert done.returncode == 0, done.stderr

        created = jira.add_user("jdoe", display_name="Jane Doe", email="jane@example.com")
        jira.update_user("jdoe", display_name="Jane Q. Doe")
        jira.remove_user("jdoe")
        jira.webhooks.wait_idle()

    assert [d.status for d in jira.webhooks.deliveries] == [200, 200, 200]
    got = [json.loads(b) for b, _ in broker.drain(broker.topology.login_queue)]
    assert [m["change"] for m in got] == ["created", "updated", "deleted"]
    if flavor == "cloud":
        assert {m["account_id"] for m in got} == {created["accountId"]}
        assert all(m["delivery"] for m in got)
    else:
        assert {(m["user_key"], m["username"]) for m in got} == {(created["key"], "jdoe")}


def test_jira_retries_a_delivery_the_receiver_could_not_take(broker, tmp_path):
    """No receiver listening at first: the fake, like Cloud, sends the same delivery
    again; once a receiver is up it is published once."""
    with FakeJira(flavor="cloud") as jira:
        receiver = ReceiverProcess(
            env=receiver_env(amqp_url=broker.url, topology=broker.topology),
            log_path=tmp_path / "receiver.log",
        ).start()
        url = receiver.url
        receiver.stop()
        jira.webhooks.retry_delay = 0.3
        jira.webhooks.retries = 60
        jira.webhooks.register(url, secret=SECRET)
        jira.add_user("late")  # delivered while nothing listens

        wait_for(lambda: jira.webhooks.deliveries, what="a first attempt")
        port = url.split(":")[2].split("/")[0]
        receiver = ReceiverProcess(
            env=receiver_env(
                amqp_url=broker.url,
                topology=broker.topology,
                ASSETSYNC_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            ),
            log_path=tmp_path / "receiver-2.log",
        ).start()
        try:
            jira.webhooks.wait_idle()
        finally:
            receiver.stop()

    statuses = [d.status for d in jira.webhooks.deliveries]
    assert statuses[0] is None and statuses[-1] == 200
    assert len({d.identifier for d in jira.webhooks.deliveries}) == 1
    assert len(broker.drain(broker.topology.login_queue)) == 1


def test_the_demo_jiras_directory_changes_reach_the_queue(broker, receiver):
    with FakeJira(flavor="datacenter") as jira:
        jira.add_sample_users(3)
        jira.webhooks.register(receiver.url, secret=SECRET)
        changes = DirectoryChanges(jira, every=0.001)
        for _ in range(2):
            time.sleep(0.01)
            changes.tick()
        jira.webhooks.wait_idle()

    got = [json.loads(b) for b, _ in broker.drain(broker.topology.login_queue)]
    assert [m["change"] for m in got] == ["updated", "updated"]
    assert len({m["user_key"] for m in got}) == 2


@pytest.fixture
def https_jira(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Jira with no webhooks over HTTPS, its certificate self-signed: (URL, CA file)."""
    cert, key = tmp_path / "jira.pem", tmp_path / "jira.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_registration_checks_jiras_certificate_against_the_configured_ca_bundle(https_jira):
    # 0.2.0's registration had a Jira client of its own that ignored the CA bundle.
    url, ca_bundle = https_jira
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_JIRA_URL=url, ASSETSYNC_JIRA_TOKEN="secret", ASSETSYNC_JIRA_FLAVOR="datacenter"
    )

    def status(**more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "producers.jira_webhooks", "status"],
            cwd=ROOT,
            env={**env, **more},
            capture_output=True,
            text=True,
            timeout=60,
        )

    untrusted, trusted = status(), status(ASSETSYNC_JIRA_CA_BUNDLE=str(ca_bundle))

    assert untrusted.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert trusted.returncode == 1  # it got an answer: no webhook of that name
    assert trusted.stderr.strip() == (
        f"{PROG}: no webhook named 'assetsync users' in Jira (run `register --url URL`)"
    )
