"""Bulk sync: fan-out by prefix and groups, tracked runs, both Jira flavours."""

from __future__ import annotations

import threading
import time

import pika
import pytest

from demo.fake_jira import FakeJira
from lab.harness import counts, request_bulk, user_assets, wait_run_finished

PAGE = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "50"}


def people(fake: FakeJira, *, cloud: bool = False) -> list[dict]:
    return [u for u in fake.users() if not cloud or u["accountType"] == "atlassian"]


def expect(matched: int, **rest: int) -> dict[str, int]:
    base = {
        "matched": matched,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "deactivated": 0,
        "missing": 0,
        "failed": 0,
    }
    return {**base, **rest}


def test_all_users_of_a_paged_directory_are_synced_then_a_rerun_is_all_unchanged(
    start_worker, broker, jira, database
):
    jira.add_sample_users(2500, inactive_every=7)
    start_worker(env=PAGE), start_worker(env=PAGE)

    run = wait_run_finished(database, request_bulk(broker))
    assert run["state"] == "done"
    assert counts(run) == expect(2500, created=2500)
    assets = user_assets(database)
    assert sorted(a["jira_id"] for a in assets) == sorted(u["key"] for u in people(jira))
    inactive = {u["key"] for u in people(jira) if not u["active"]}
    assert len(inactive) == 2500 // 7
    assert {a["jira_id"] for a in assets if a["fields"]["Active"] is False} == inactive
    assert jira.request_count("/rest/api/2/user?") == 0  # snapshots came from the pages

    rerun = wait_run_finished(database, request_bulk(broker))
    assert counts(rerun) == expect(2500, unchanged=2500)
    assert user_assets(database) == assets  # nothing written, updated_at untouched


def test_old_data_center_search_is_partitioned_past_its_1000_cap(start_worker, broker, database):
    with FakeJira(flavor="datacenter", has_user_list=False, search_cap=1000) as old:
        old.add_sample_users(2500)
        start_worker(jira_url=old.url, env=PAGE)
        run = wait_run_finished(database, request_bulk(broker))
        assert counts(run) == expect(2500, created=2500)
        assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(
            u["key"] for u in old.users()
        )


def test_cloud_directory_skips_app_and_customer_accounts(
    start_worker, broker, cloud_jira, database
):
    cloud_jira.add_sample_users(2500, app_accounts=40)
    start_worker(jira_url=cloud_jira.url, env=PAGE)
    run = wait_run_finished(database, request_bulk(broker))
    humans = people(cloud_jira, cloud=True)
    assert len(humans) == 2500
    assert counts(run) == expect(2500, created=2500)
    assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(
        u["accountId"] for u in humans
    )


def test_prefix_only_syncs_usernames_starting_with_it_case_insensitively(
    start_worker, broker, jira, database
):
    jira.add_sample_users(600)
    upper = jira.add_user("AUpper", display_name="Zed Upper")
    start_worker(env=PAGE)
    wanted = {u["key"] for u in people(jira) if u["name"].lower().startswith("a")}
    assert upper["key"] in wanted and len(wanted) > 10
    run = wait_run_finished(database, request_bulk(broker, prefix="a"))
    assert counts(run) == expect(len(wanted), created=len(wanted))
    assert {a["jira_id"] for a in user_assets(database)} == wanted


def test_groups_narrow_to_members_of_any_listed_group(start_worker, broker, jira, database):
    jira.add_sample_users(600, groups={"developers": 3, "designers": 5})
    start_worker(env=PAGE)
    members = lambda g: {u["key"] for u in jira.users() if g in _groups(jira, u)}  # noqa: E731
    wanted = members("developers") | members("designers")
    run = wait_run_finished(database, request_bulk(broker, groups=("developers", "designers")))
    assert counts(run) == expect(len(wanted), created=len(wanted))
    assert {a["jira_id"] for a in user_assets(database)} == wanted


def test_prefix_and_groups_both_apply(start_worker, broker, jira, database):
    jira.add_sample_users(600, groups={"developers": 2})
    start_worker(env=PAGE)
    wanted = {
        u["key"]
        for u in jira.users()
        if "developers" in _groups(jira, u) and u["name"].lower().startswith("m")
    }
    run = wait_run_finished(database, request_bulk(broker, prefix="m", groups=("developers",)))
    assert counts(run) == expect(len(wanted), created=len(wanted))
    assert {a["jira_id"] for a in user_assets(database)} == wanted


def test_unknown_group_fails_the_run_with_a_clear_error(start_worker, broker, jira, database):
    jira.add_sample_users(10)
    start_worker(env=PAGE)
    run = wait_run_finished(database, request_bulk(broker, groups=("no-such-group",)))
    assert run["state"] == "failed"
    assert run["error"] == "Jira has no group 'no-such-group'"
    assert user_assets(database) == []
    [(_, headers)] = broker.dead_letters()  # the request, with the same reason
    assert headers["x-assetsync-error"] == "Jira has no group 'no-such-group'"


def test_dry_run_reports_what_would_happen_and_writes_no_asset(
    start_worker, broker, jira, database
):
    jira.add_sample_users(300, inactive_every=10)
    start_worker(env=PAGE)
    first = wait_run_finished(database, request_bulk(broker, prefix="b"))
    synced = user_assets(database)
    jira.update_user(
        next(u["key"] for u in people(jira) if u["name"].startswith("b")),
        display_name="Changed Name",
    )

    run = wait_run_finished(database, request_bulk(broker, dry_run=True))
    assert run["dry_run"] is True
    assert counts(run) == expect(
        300, created=300 - first["matched"], updated=1, unchanged=first["matched"] - 1
    )
    assert user_assets(database) == synced


def test_users_gone_from_jira_are_marked_missing_not_deleted(start_worker, broker, jira, database):
    jira.add_sample_users(200)
    start_worker(env=PAGE)
    wait_run_finished(database, request_bulk(broker))
    gone = [u["key"] for u in people(jira)[:3]]
    for key in gone:
        jira.remove_user(key)

    run = wait_run_finished(database, request_bulk(broker))
    assert counts(run) == expect(197, unchanged=197, missing=3)
    assets = {a["jira_id"]: a for a in user_assets(database)}
    assert len(assets) == 200
    assert {k for k, a in assets.items() if a["state"] == "missing"} == set(gone)
    assert all(assets[k]["fields"]["Active"] is False for k in gone)

    # A filtered run says nothing about users outside its filter.
    run = wait_run_finished(database, request_bulk(broker, prefix="zz"))
    assert run["missing"] == 0


def test_missing_users_setting_ignore_leaves_assets_alone(start_worker, broker, jira, database):
    jira.add_sample_users(50)
    worker = start_worker(env={**PAGE, "ASSETSYNC_MISSING_USERS": "ignore"})
    wait_run_finished(database, request_bulk(broker))
    jira.remove_user(people(jira)[0]["key"])
    run = wait_run_finished(database, request_bulk(broker))
    assert run["missing"] == 1  # reported, but not written
    assert all(a["state"] == "active" for a in user_assets(database))
    assert worker.proc.poll() is None


def test_deactivated_users_are_counted(start_worker, broker, jira, database):
    jira.add_sample_users(100)
    start_worker(env=PAGE)
    wait_run_finished(database, request_bulk(broker))
    for user in people(jira)[:4]:
        jira.update_user(user["key"], active=False)
    run = wait_run_finished(database, request_bulk(broker))
    assert counts(run) == expect(100, updated=4, unchanged=96, deactivated=4)


def _groups(jira: FakeJira, user: dict) -> set[str]:
    data = jira.user_json(user["key"], expand_groups=True)
    return {g["name"] for g in data["groups"]["items"]}


@pytest.fixture(autouse=True)
def _no_dead_letters(broker):
    yield
    assert broker.dead_letters() == []


def test_mapped_groups_are_fetched_per_user_and_kept_in_step(start_worker, broker, jira, database):
    import json

    import psycopg

    with psycopg.connect(database) as conn:  # an admin adds a field for groups
        conn.execute(
            "INSERT INTO asset_fields (asset_type_id, name, field_type)"
            " VALUES (1, 'Groups', 'text')"
        )
    jira.add_sample_users(30, groups={"developers": 2, "designers": 3})
    field_map = {"name": "Username", "groups": "Groups"}
    start_worker(env={**PAGE, "ASSETSYNC_FIELD_MAP": json.dumps(field_map)})
    run = wait_run_finished(database, request_bulk(broker))
    assert counts(run) == expect(30, created=30)
    assets = {a["jira_id"]: a for a in user_assets(database)}
    for user in people(jira):
        groups = ", ".join(sorted(_groups(jira, user))) or None
        assert assets[user["key"]]["fields"].get("Groups") == groups
    # Listing pages carry no groups, so each user costs one extra Jira request here.
    assert jira.request_count("expand=groups") == 30


@pytest.mark.parametrize("ahead", [300, 0])
def test_the_scan_keeps_at_most_its_bound_of_messages_waiting_for_the_workers(
    start_worker, broker, jira, database, ahead
):
    jira.add_sample_users(4000)
    # Small batches make the one worker slow to drain the queue; the scan is not.
    start_worker(
        env={
            "ASSETSYNC_JIRA_PAGE_SIZE": "100",
            "ASSETSYNC_BATCH_SIZE": "10",
            "ASSETSYNC_BULK_QUEUE_AHEAD": str(ahead),
        }
    )
    depths: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
            channel = conn.channel()
            while not done.is_set():
                ok = channel.queue_declare(broker.topology.user_sync_queue, passive=True)
                depths.append(ok.method.message_count)
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run = wait_run_finished(database, request_bulk(broker))
    finally:
        done.set()
        watcher.join()
    assert counts(run) == expect(4000, created=4000)
    assert len(user_assets(database)) == 4000
    print(f"most messages waiting: {max(depths)} (bound {ahead or 'none'})")
    if ahead:  # checked, then at most a page published
        assert 0 < max(depths) <= ahead + 100
    else:  # unbounded, the scan is far ahead: the watch would have seen a broken bound
        assert max(depths) > 300 + 100
