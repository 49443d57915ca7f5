"""Sync settings stored in the asset store (as the console saves them): every worker
follows a change within 10 s without a restart, an environment variable still wins, and
a stored version that does not fit the asset store is not applied."""

from __future__ import annotations

import time

import psycopg
import pytest

from lab.harness import asset_of, wait_for
from producers.publisher import Publisher, publish_user_logged_in
from worker.errors import StaleSettings
from worker.store.sync_settings import load_settings, save_settings

FOLLOW_WITHIN = 10.0  # seconds: the promise the console makes


def store(database: str, **values: object) -> tuple[int, float]:
    """Save a new version with ``values`` over the current one; (version, when)."""
    with psycopg.connect(database) as conn:
        current = load_settings(conn)
        version = save_settings(
            conn, {**current.values, **values}, based_on=current.version, by="tests"
        )
    return version, time.monotonic()


def login(broker, username: str) -> None:
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publish_user_logged_in(publisher, username=username)


def applied(worker, version: int, saved_at: float) -> float:
    """Wait for the worker to apply ``version``; the seconds it took."""
    wait_for(
        lambda: f"sync settings version {version} applied" in worker.log(),
        timeout=FOLLOW_WITHIN + 2,
        what=f"the worker to apply version {version}",
    )
    return time.monotonic() - saved_at


def test_a_running_worker_follows_stored_settings_within_10_seconds(
    start_worker, broker, jira, database
):
    jira.add_user("jdoe", display_name="Jane Doe")
    bob = jira.add_user("bob", display_name="Bob Brown")
    worker = start_worker()

    version, saved_at = store(database, folder="People/Staff", alphabetical_subfolders=False)
    assert applied(worker, version, saved_at) <= FOLLOW_WITHIN
    login(broker, "jdoe")
    jane = wait_for(lambda: asset_of(database, "JIRAUSER10000"), what="jdoe's asset")
    assert jane["folder_path"] == "People/Staff"

    version, saved_at = store(database, sync_on_login=False)
    assert applied(worker, version, saved_at) <= FOLLOW_WITHIN
    login(broker, "bob")
    wait_for(lambda: "sync on login is off: not syncing username 'bob'" in worker.log())
    assert asset_of(database, bob["key"]) is None


def test_an_environment_variable_wins_over_the_stored_setting(start_worker, broker, jira, database):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    worker = start_worker(env={"ASSETSYNC_FOLDER": "Pinned"})
    assert "set by the environment: ASSETSYNC_FOLDER" in worker.log()
    version, saved_at = store(database, folder="People", alphabetical_subfolders=False)
    applied(worker, version, saved_at)
    login(broker, "jdoe")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["folder_path"] == "Pinned"  # the stored folder is not used...
    # ...but the stored setting the environment does not give is.


def test_stored_settings_that_do_not_fit_the_store_are_not_applied(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    worker = start_worker()
    store(database, asset_type="Laptop")  # saved past the console, which would refuse it
    wait_for(
        lambda: (
            "stored sync settings version 1 not applied, version 0 stays in force" in worker.log()
        ),
        timeout=FOLLOW_WITHIN + 2,
        what="the refusal",
    )
    assert "no asset type 'Laptop'" in worker.log()
    login(broker, "jdoe")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["asset_type"] == "Employee"
    assert worker.log().count("not applied") == 1  # said once, not at every check


def test_a_save_based_on_a_replaced_version_is_refused(database):
    with psycopg.connect(database) as conn:
        assert save_settings(conn, {"folder": "A"}, based_on=0, by="alice") == 1
        conn.commit()
        with pytest.raises(StaleSettings, match="changed by alice meanwhile"):
            save_settings(conn, {"folder": "B"}, based_on=0, by="bob")
        conn.rollback()
        assert load_settings(conn).values == {"folder": "A"}


def test_a_boolean_jira_field_fills_a_text_asset_field_as_true_or_false(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    store(database, field_map={"name": "Username", "active": "Full name"})
    worker = start_worker()
    login(broker, "jdoe")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["fields"]["Full name"] == "true"
    login(broker, "jdoe")
    wait_for(lambda: "unchanged" in worker.log(), what="the second login")  # "true" == True
