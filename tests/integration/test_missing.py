"""An asset is marked missing only when Jira confirms (404) that its user is gone, and
never more than ``ASSETSYNC_MISSING_LIMIT`` of them in one run."""

from __future__ import annotations

import os
import subprocess
import sys

from demo import directories
from demo.fake_jira import FakeJira
from lab.harness import (
    ROOT,
    asset_of,
    counts,
    login_body,
    request_bulk,
    user_assets,
    wait_for,
    wait_run_finished,
)

PAGE = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}
LOOKUP = "/rest/api/2/user?key="


def expect(matched: int, **rest: int) -> dict[str, int]:
    base = dict.fromkeys(("created", "updated", "unchanged", "deactivated", "missing", "failed"), 0)
    return {"matched": matched, **base, **rest}


def states(database: str) -> dict[str, tuple[str, bool]]:
    """Each asset's (state, Active field), by Jira user key."""
    return {a["jira_id"]: (a["state"], a["fields"]["Active"]) for a in user_assets(database)}


def sync_everyone(jira: FakeJira, broker, database: str, count: int) -> list[str]:
    jira.add_sample_users(count)
    run = wait_run_finished(database, request_bulk(broker))
    assert counts(run) == expect(count, created=count)
    return [u["key"] for u in jira.users()]


def test_users_left_out_of_every_listing_are_synced_not_marked_missing(
    start_worker, broker, jira, database
):
    start_worker(env=PAGE)
    keys = sync_everyone(jira, broker, database, 300)
    hidden, hidden_inactive, gone = keys[:3], keys[3], keys[4:6]
    for key in hidden:
        jira.update_user(key, hidden=True)  # a permission, a directory being synchronised
    jira.update_user(hidden_inactive, hidden=True, active=False)
    for key in gone:
        jira.remove_user(key)

    run = wait_run_finished(database, request_bulk(broker))

    assert counts(run) == expect(298, unchanged=297, updated=1, deactivated=1, missing=2)
    assert run["missing_checked"] == 6  # one look-up per asset the scan did not reach
    assert jira.request_count(LOOKUP) == 6
    after = states(database)
    assert all(after[k] == ("active", True) for k in hidden)
    assert after[hidden_inactive] == ("active", False)  # follows Jira, like any deactivation
    assert all(after[k] == ("missing", False) for k in gone)
    assert sum(1 for s in after.values() if s == ("active", True)) == 297


def test_on_cloud_the_look_up_is_by_account_id(start_worker, broker, cloud_jira, database):
    cloud_jira.add_sample_users(120)
    start_worker(jira_url=cloud_jira.url, env=PAGE)
    wait_run_finished(database, request_bulk(broker))
    ids = [u["accountId"] for u in cloud_jira.users()]
    cloud_jira.update_user(ids[0], hidden=True)
    cloud_jira.remove_user(ids[1])

    run = wait_run_finished(database, request_bulk(broker))

    assert counts(run) == expect(119, unchanged=119, missing=1)
    assert cloud_jira.request_count("/rest/api/3/user?accountId=") == 2
    after = states(database)
    assert after[ids[0]] == ("active", True) and after[ids[1]] == ("missing", False)


def test_a_user_no_query_can_reach_keeps_their_asset(start_worker, broker, database):
    with FakeJira(flavor="datacenter", has_user_list=False) as old:
        old.add_sample_users(300)
        old.add_users(directories.behind_the_cap(1200))
        start_worker(jira_url=old.url, env=PAGE)
        broker.publish_raw(
            login_body(username=directories.UNREACHABLE), routing_key="user-logged-in"
        )
        [unreachable] = [u for u in old.users() if u["name"] == directories.UNREACHABLE]
        wait_for(lambda: asset_of(database, unreachable["key"]), what="the login's asset")

        run = wait_run_finished(database, request_bulk(broker))

        everyone = len(old.users())
        assert counts(run) == expect(everyone, created=everyone - 1, unchanged=1)
        assert run["missing_checked"] == 1
        assert asset_of(database, unreachable["key"])["state"] == "active"
        assert len(user_assets(database)) == everyone


def test_jira_failing_to_answer_a_look_up_marks_nothing(start_worker, broker, jira, database):
    start_worker(env=PAGE)
    keys = sync_everyone(jira, broker, database, 100)
    jira.remove_user(keys[0])
    jira.fail_next(50, status=503, path_contains=LOOKUP)  # more than the retries last

    run = wait_run_finished(database, request_bulk(broker))

    assert run["state"] == "failed"
    assert "503" in run["error"]
    assert run["missing"] == 0
    assert all(s == ("active", True) for s in states(database).values())
    [(_, headers)] = broker.dead_letters()  # the request, given up on after its retries
    assert "503" in headers["x-assetsync-error"]


def test_a_look_up_that_fails_for_a_while_is_asked_again_then_confirms(
    start_worker, broker, jira, database
):
    start_worker(env=PAGE)
    keys = sync_everyone(jira, broker, database, 100)
    jira.remove_user(keys[0])
    jira.fail_next(2, status=503, path_contains=LOOKUP)

    run = wait_run_finished(database, request_bulk(broker))

    assert counts(run) == expect(99, unchanged=99, missing=1)
    assert states(database)[keys[0]] == ("missing", False)
    assert jira.request_count(LOOKUP) == 3  # two 503s, then the 404 that confirms
    assert broker.dead_letters() == []


def test_a_dry_run_says_how_many_would_be_marked_and_marks_none(
    start_worker, broker, jira, database
):
    start_worker(env=PAGE)
    keys = sync_everyone(jira, broker, database, 100)
    for key in keys[:3]:
        jira.remove_user(key)

    dry = wait_run_finished(database, request_bulk(broker, dry_run=True))

    assert dry["state"] == "done"
    assert counts(dry) == expect(97, unchanged=97, missing=3)
    assert all(s == ("active", True) for s in states(database).values())


def test_more_missing_than_the_limit_fails_the_run_and_marks_none(
    start_worker, broker, jira, database
):
    worker = start_worker(env={**PAGE, "ASSETSYNC_MISSING_LIMIT": "5%"})
    keys = sync_everyone(jira, broker, database, 100)
    for key in keys[:6]:
        jira.remove_user(key)  # 6 of 100: one more than 5% allows

    for dry_run in (True, False):
        run = wait_run_finished(database, request_bulk(broker, dry_run=dry_run))

        assert run["state"] == "failed"
        assert counts(run)["unchanged"] == 94  # the users Jira has were synced all the same
        assert "ASSETSYNC_MISSING_LIMIT=5%" in run["error"]
        assert ("would mark none missing" in run["error"]) is dry_run
        assert run["missing"] == 6
        assert all(s == ("active", True) for s in states(database).values())
        assert run["error"] in worker.log()
        shown = admin_script("status", str(run["run_id"]), database=database)
        assert f"run failed: {run['error']}" in shown.stderr


def test_the_limit_can_be_a_count(start_worker, broker, jira, database):
    start_worker(env={**PAGE, "ASSETSYNC_MISSING_LIMIT": "2"})
    keys = sync_everyone(jira, broker, database, 50)
    for key in keys[:2]:
        jira.remove_user(key)
    run = wait_run_finished(database, request_bulk(broker))
    assert run["state"] == "done" and run["missing"] == 2
    jira.remove_user(keys[2])
    jira.add_user("late", display_name="Late")  # so the run has something to do
    for key in keys[3:5]:
        jira.remove_user(key)
    run = wait_run_finished(database, request_bulk(broker))
    assert run["state"] == "failed"
    assert "the users of more than 2 Employee assets are gone" in run["error"]
    assert {k for k, s in states(database).items() if s[0] == "missing"} == set(keys[:2])


def admin_script(*args: str, database: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env["ASSETSYNC_DATABASE_URL"] = database
    return subprocess.run(
        [sys.executable, "-m", "producers.bulk_sync", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
