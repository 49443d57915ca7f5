"""A worker with ``ASSETSYNC_LOG_FORMAT=json``: every line it writes is a JSON object."""

from __future__ import annotations

import json

from producers.publisher import Publisher, publish_user_logged_in
from tests.support import asset_of, wait_for


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
