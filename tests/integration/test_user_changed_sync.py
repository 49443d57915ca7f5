"""Jira's user events end to end: fake Jira -> signed webhook -> receiver -> worker ->
user asset.
"""

from __future__ import annotations

from demo.fake_jira import FakeJira
from lab.harness import asset_of, wait_for
from tests.webhook_support import SECRET, dc_event


def test_a_created_user_gets_an_asset_without_logging_in(
    start_worker, receiver, jira: FakeJira, database
):
    start_worker()
    jira.webhooks.register(receiver.url, secret=SECRET)

    user = jira.add_user("jdoe", display_name="Jane Doe", email="jane@example.com")

    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["fields"]["Full name"] == "Jane Doe"
    assert asset["state"] == "active"


def test_an_update_delivered_late_still_ends_with_jiras_current_data(
    start_worker, receiver, jira: FakeJira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    jira.update_user("jdoe", display_name="Jane Q. Doe")
    start_worker()

    # The older event arrives last: the worker fetches the user, so the newer name stays.
    receiver.post(dc_event("user_updated", key=user["key"], ts=2_000), delivery="newer")
    receiver.post(dc_event("user_created", key=user["key"], ts=1_000), delivery="older")

    asset = wait_for(lambda: asset_of(database, user["key"]), what="the asset")
    assert asset["fields"]["Full name"] == "Jane Q. Doe"


def test_a_deleted_user_is_marked_missing_only_once_jira_confirms_it_is_gone(
    start_worker, receiver, jira: FakeJira, database
):
    user = jira.add_user("jdoe", display_name="Jane Doe")
    start_worker()
    jira.webhooks.register(receiver.url, secret=SECRET)
    jira.update_user("jdoe", display_name="Jane Doe")  # the asset exists
    wait_for(lambda: asset_of(database, user["key"]), what="the asset")

    # A forged or stale "deleted" while Jira still has the user: nothing changes.
    receiver.post(dc_event("user_deleted", key=user["key"], name="jdoe"))
    jira.update_user("jdoe", display_name="Still Here")
    wait_for(
        lambda: (a := asset_of(database, user["key"])) and a["fields"]["Full name"] == "Still Here",
        what="the later update",
    )
    assert asset_of(database, user["key"])["state"] == "active"

    jira.remove_user("jdoe")

    gone = wait_for(
        lambda: (a := asset_of(database, user["key"])) and a["state"] == "missing" and a,
        what="the asset to be marked missing",
    )
    assert gone["fields"]["Active"] is False
