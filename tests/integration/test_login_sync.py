"""Sync on login, end to end: a user-logged-in message in, one user asset out."""

from __future__ import annotations

import json

from lab.harness import asset_of, login_body, user_assets, wait_for
from producers.publisher import Publisher, publish_user_logged_in


def test_first_login_creates_the_asset_in_its_folder_and_subfolder(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe", email="jane@example.com")
    start_worker()
    with Publisher(url=broker.url, topology=broker.topology) as publisher:
        publish_user_logged_in(publisher, username="jdoe")

    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["folder_path"] == "Employees/J"
    assert asset["asset_type"] == "Employee"
    assert asset["state"] == "active"
    assert asset["fields"] == {
        "User": user["key"],
        "Username": "jdoe",
        "Full name": "Jane Doe",
        "E-mail": "jane@example.com",
        "Active": True,
    }


def test_second_login_updates_only_changed_fields(start_worker, broker, jira, database):
    user = jira.add_user("jdoe", display_name="Jane Doe", email="jane@example.com")
    start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    first = wait_for(lambda: asset_of(database, user["key"]), what="the asset")

    # Unchanged Jira data: nothing is written, updated_at stays.
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    jira.update_user("jdoe", email="jane.doe@example.com")
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    second = wait_for(
        lambda: (
            (a := asset_of(database, user["key"]))
            and a["fields"]["E-mail"] != "jane@example.com"
            and a
        ),
        what="the e-mail change",
    )
    assert second["asset_id"] == first["asset_id"]
    assert second["fields"] == {**first["fields"], "E-mail": "jane.doe@example.com"}
    assert second["updated_at"] > first["updated_at"]
    assert second["created_at"] == first["created_at"]


def test_unchanged_login_writes_nothing(start_worker, broker, jira, database):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    worker = start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    first = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    for _ in range(3):
        broker.publish_raw(login_body(user_key=user["key"]), routing_key="user-logged-in")
    wait_for(lambda: worker.log().count("unchanged") >= 3, what="three unchanged logins")
    assert asset_of(database, user["key"]) == first


def test_renamed_user_updates_their_asset_instead_of_getting_a_second(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, user["key"]), what="the asset")

    jira.update_user(user["key"], name="ssmith", display_name="Sam Smith")
    broker.publish_raw(login_body(username="ssmith"), routing_key="user-logged-in")
    renamed = wait_for(
        lambda: (
            (a := asset_of(database, user["key"])) and a["fields"]["Username"] == "ssmith" and a
        ),
        what="the rename",
    )
    assert len(user_assets(database)) == 1
    assert renamed["fields"]["Full name"] == "Sam Smith"
    assert renamed["folder_path"] == "Employees/S"


def test_inactive_user_who_logs_in_is_synced_as_inactive(start_worker, broker, jira, database):
    user = jira.add_user("old.timer", display_name="Old Timer", active=False)
    start_worker()
    broker.publish_raw(login_body(username="old.timer"), routing_key="user-logged-in")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["fields"]["Active"] is False


def test_names_without_a_leading_letter_go_to_the_hash_folder(start_worker, broker, jira, database):
    user = jira.add_user("9lives", display_name="9 Lives")
    start_worker()
    broker.publish_raw(login_body(username="9lives"), routing_key="user-logged-in")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["folder_path"] == "Employees/#"


def test_settings_choose_folder_mapping_and_no_subfolders(start_worker, broker, jira, database):
    user = jira.add_user("jdoe", display_name="Jane Doe", email="jane@example.com")
    start_worker(
        env={
            "ASSETSYNC_FOLDER": "People/Staff",
            "ASSETSYNC_ALPHABETICAL_SUBFOLDERS": "false",
            "ASSETSYNC_FIELD_MAP": json.dumps({"name": "Username", "emailAddress": "Full name"}),
        }
    )
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["folder_path"] == "People/Staff"
    assert asset["fields"] == {
        "User": user["key"],
        "Username": "jdoe",
        "Full name": "jane@example.com",
    }


def test_cloud_login_by_account_id(start_worker, broker, cloud_jira, database):
    user = cloud_jira.add_user("ada", display_name="Ada Lovelace", email=None)
    start_worker(jira_url=cloud_jira.url)
    broker.publish_raw(login_body(account_id=user["accountId"]), routing_key="user-logged-in")
    asset = wait_for(lambda: asset_of(database, user["accountId"]), what="the asset")
    # Cloud has no usernames; with the e-mail hidden the accountId stands in.
    assert asset["fields"]["Username"] == user["accountId"]
    assert asset["fields"]["Full name"] == "Ada Lovelace"
    assert "E-mail" not in asset["fields"]
    assert asset["folder_path"] == "Employees/A"


def test_sync_on_login_off_leaves_assets_alone(start_worker, broker, jira, database):
    jira.add_user("jdoe")
    worker = start_worker(env={"ASSETSYNC_SYNC_ON_LOGIN": "false"})
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: "sync on login is off" in worker.log(), what="the worker to note it")
    assert user_assets(database) == []
    assert broker.count(broker.topology.login_queue) == 0
    assert broker.dead_letters() == []


def test_jira_outage_and_rate_limit_are_retried_until_the_asset_is_created(
    start_worker, broker, jira, database
):
    user = jira.add_user("jdoe")
    jira.fail_next(1, status=503, path_contains="/user")
    jira.fail_next(1, status=429, retry_after=0, path_contains="/user")
    worker = start_worker()
    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert "attempt 2" in worker.log() and "attempt 3" in worker.log()
    assert broker.dead_letters() == []
