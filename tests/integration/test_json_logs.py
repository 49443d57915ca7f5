"""``ASSETSYNC_LOG_FORMAT=json``: every line the worker, the webhook receiver and the
security-log source write is a JSON object, with credentials masked."""

from __future__ import annotations

import json

from lab.harness import asset_of, wait_for
from producers.publisher import Publisher, publish_user_logged_in
from tests.seclog_support import SecurityLogProcess, append, passed
from tests.webhook_support import SECRET, ReceiverProcess, dc_event, receiver_env


def test_worker_writes_only_json_lines_and_no_credentials(start_worker, broker, jira, database):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    worker = start_worker(env={"ASSETSYNC_LOG_FORMAT": "json"})
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publish_user_logged_in(publisher, username="jdoe")
        publish_user_logged_in(publisher, username="nobody")  # dead-lettered: a warning
    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    wait_for(lambda: "nobody" in worker.log(), what="the dead-letter warning")
    assert worker.terminate() == 0

    lines = [json.loads(line) for line in worker.log().splitlines()]

    assert all({"time", "level", "logger", "thread", "message"} <= set(line) for line in lines)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("consuming ") for m in messages)
    assert any(m.startswith("login of 'jdoe': asset ") for m in messages)
    [dead] = [line for line in lines if line["level"] == "WARNING" and "nobody" in line["message"]]
    assert dead["thread"] == "login"
    assert dead["queue"] == broker.topology.login_queue
    assert dead["message_type"] == "user-logged-in"
    [synced] = [line for line in lines if line["message"].startswith("login of 'jdoe'")]
    assert synced["jira_user"] == "jdoe"
    assert synced["queue"] == broker.topology.login_queue
    assert messages[-1].startswith("stopped after ")
    assert ":guest@" not in worker.log()


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines
    assert all({"time", "level", "logger", "thread", "message"} <= set(line) for line in lines)
    return lines


def test_the_webhook_receiver_writes_only_json_lines_and_no_credentials(broker, tmp_path):
    # Seen in 0.2.0: the receiver set up logging of its own and printed plain text.
    process = ReceiverProcess(
        env=receiver_env(
            amqp_url=broker.url, topology=broker.topology, ASSETSYNC_LOG_FORMAT="json"
        ),
        log_path=tmp_path / "receiver.log",
    ).start()
    assert process.post(dc_event("user_updated")).status_code == 200
    assert process.post(b"not json").status_code == 400
    assert process.stop() == 0

    messages = [line["message"] for line in json_lines(process.log())]
    assert any(str(m).startswith("listening on http://127.0.0.1:") for m in messages)
    assert any(str(m).startswith("published user-changed") for m in messages)
    assert any(str(m).startswith("answered 400") for m in messages)
    assert ":guest@" not in process.log()
    assert SECRET not in process.log()


def test_the_security_log_source_writes_only_json_lines(broker, tmp_path):
    log_file = tmp_path / "atlassian-jira-security.log"
    log_file.write_text("")
    broker.declare()
    source = SecurityLogProcess(
        amqp_url=broker.url,
        topology=broker.topology,
        log_path=tmp_path / "source.log",
        args=(str(log_file), "--state-file", str(tmp_path / "state.json")),
        env={"ASSETSYNC_LOG_FORMAT": "json"},
    )
    source.log_path.write_text("")
    source.start()
    append(log_file, passed("alice"))
    wait_for(lambda: broker.drain(broker.topology.login_queue), what="the login event")
    assert source.stop() == 0

    messages = [str(line["message"]) for line in json_lines(source.output())]
    assert any(m.startswith("following ") for m in messages)
    assert any(m.startswith("stopped; 1 lines read: 1 logins published") for m in messages)
