"""A rolling upgrade from the previous release while a bulk run is under way: the schema
migrated under a replica of the previous version that goes on working, then a replica of
this version started and the old one stopped. Counts stay exact.

The previous release's code is taken from git (``PREVIOUS``), so this needs a clone with
history.
"""

from __future__ import annotations

import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lab.harness import (
    ROOT,
    WorkerProcess,
    asset_of,
    counts,
    login_body,
    request_bulk,
    run_summary,
    user_assets,
    wait_for,
    wait_run_finished,
    worker_env,
)
from worker.store.migrate import migrate

PREVIOUS = "4dd36db52987c29abb8e522831b470f7411d70ea"  # version 0.2.0
USERS = 2000
ENV = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}


def previous_release(into: Path) -> Path | None:
    """The previous release's ``worker`` and ``schemas`` packages, unpacked in ``into``."""
    archive = into / "previous.tar"
    try:
        subprocess.run(
            ["git", "archive", "-o", str(archive), PREVIOUS, "worker", "schemas"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    tree = into / "previous"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture
def empty_database(infra):
    name = f"assetsync_upgrade_{uuid.uuid4().hex[:10]}"
    url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    yield url
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_a_rolling_upgrade_during_a_bulk_run_keeps_every_count_exact(
    infra, broker, jira, empty_database, tmp_path
):
    tree = previous_release(tmp_path)
    if tree is None:
        pytest.skip(f"this clone does not have the previous release ({PREVIOUS[:7]})")
    database = empty_database
    migrate(database, source=tree / "worker" / "migrations")  # as it was deployed

    started: list[WorkerProcess] = []

    def worker(name: str, cwd: Path) -> WorkerProcess:
        env = worker_env(
            amqp_url=infra.amqp_url,
            database_url=database,
            topology=broker.topology,
            jira_url=jira.url,
            extra=ENV,
        )
        started.append(WorkerProcess(env=env, log_path=tmp_path / f"{name}.log", cwd=cwd))
        return started[-1].start()

    try:
        upgrade_during_a_run(database, broker, jira, worker, tree)
    finally:
        for process in started:
            process.kill()


def upgrade_during_a_run(database, broker, jira, worker, tree) -> None:
    """The upgrade, step by step, as the CHANGELOG says to do it."""

    jira.add_sample_users(USERS - 1)
    jira.set_delay(0.1, path_contains="/user/list")  # the scan lasts through the upgrade
    ann = jira.add_user("ann", display_name="Ann Before")
    old = worker("old", tree)
    run_id = request_bulk(broker)
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["matched"] >= 300,
        timeout=60,
        what="the run to be under way on the old replica",
    )

    # The upgrade: migrate under the running replica, start a new one, stop the old one.
    migrated = threading.Thread(target=migrate, args=(database,))
    migrated.start()
    jira.update_user("ann", display_name="Ann During")
    broker.publish_raw(login_body(username="ann"), routing_key="user-logged-in")
    migrated.join(timeout=120)
    new = worker("new", ROOT)
    assert old.terminate() == 0
    jira.update_user("ann", display_name="Ann After")
    broker.publish_raw(login_body(username="ann"), routing_key="user-logged-in")

    run = wait_run_finished(database, run_id, timeout=180)
    assert run["state"] == "done", run["error"]
    found = counts(run)
    assert (found["matched"], found["failed"], found["missing"]) == (USERS, 0, 0)
    # Ann's logins may have come before or after her page: created, or unchanged.
    assert found["created"] + found["updated"] + found["unchanged"] == USERS
    assert found["created"] >= USERS - 1
    keys = [a["jira_id"] for a in user_assets(database)]
    assert len(keys) == len(set(keys)) == USERS
    wait_for(
        lambda: asset_of(database, ann["key"])["fields"]["Full name"] == "Ann After",
        what="the login after the upgrade",
    )
    assert broker.dead_letters() == []
    assert new.terminate() == 0
