"""Bulk runs against Jira Data Center without ``/user/list`` (before 10.3): every user of
the directory exactly once, whatever the characters of their usernames, with real
workers, broker and database; also when the scanning worker is killed."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from demo import directories
from demo.fake_jira import FakeJira
from lab.harness import (
    counts,
    request_bulk,
    run_summary,
    user_assets,
    wait_for,
    wait_run_finished,
)

PAGE = {"ASSETSYNC_JIRA_PAGE_SIZE": "100", "ASSETSYNC_BATCH_SIZE": "100"}


@pytest.fixture
def old_dc() -> Iterator[FakeJira]:
    with FakeJira(flavor="datacenter", has_user_list=False) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_dead_letters(broker):
    yield
    assert broker.dead_letters() == []


def expect(matched: int, **rest: int) -> dict[str, int]:
    base = dict.fromkeys(("created", "updated", "unchanged", "deactivated", "missing", "failed"), 0)
    return {"matched": matched, **base, **rest}


def run_users(database: str, run_id: str) -> list[str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT jira_id FROM sync_run_users WHERE run_id = %s", [run_id])
        return [r[0] for r in rows]


def test_the_issues_directory_is_synced_whole_then_unchanged_and_by_prefix(
    start_worker, broker, database, old_dc
):
    """5,000 users, some named like émilie.brown, łukasz.nowak, jörg.müller or 王芳."""
    old_dc.add_sample_users(5000, inactive_every=10, native_every=20)
    everyone = {u["key"] for u in old_dc.users()}
    start_worker(jira_url=old_dc.url), start_worker(jira_url=old_dc.url)

    dry = wait_run_finished(database, request_bulk(broker, dry_run=True))
    assert counts(dry) == expect(5000, created=5000)
    run_id = request_bulk(broker)
    run = wait_run_finished(database, run_id)
    assert counts(run) == expect(5000, created=5000)
    assert sorted(run_users(database, run_id)) == sorted(everyone)
    assert {a["jira_id"] for a in user_assets(database)} == everyone

    rerun = wait_run_finished(database, request_bulk(broker))
    assert counts(rerun) == expect(5000, unchanged=5000)
    assert rerun["missing_checked"] == 0  # the scan reached every asset's user

    j_users = {u["key"] for u in old_dc.users() if u["name"].lower().startswith("j")}
    assert any(u["name"].startswith("jörg.") for u in old_dc.users())
    by_prefix = wait_run_finished(database, request_bulk(broker, prefix="J"))
    assert counts(by_prefix) == expect(len(j_users), unchanged=len(j_users))
    assert set(run_users(database, str(by_prefix["run_id"]))) == j_users


def test_a_directory_built_to_defeat_the_partitioning_is_synced_exactly_once(
    start_worker, broker, database, old_dc
):
    old_dc.add_sample_users(500)
    old_dc.add_users(directories.tower(1500))
    everyone = {u["key"] for u in old_dc.users()}
    start_worker(jira_url=old_dc.url, env=PAGE)

    run = wait_run_finished(database, request_bulk(broker))

    assert counts(run) == expect(len(everyone), created=len(everyone))
    assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(everyone)
    for prefix, starts in (("q.Q-", "q.q-"), ("ß", "ß"), ("é", "é")):
        wanted = {u["key"] for u in old_dc.users() if u["name"].lower().startswith(starts)}
        by_prefix = wait_run_finished(database, request_bulk(broker, prefix=prefix))
        assert set(run_users(database, str(by_prefix["run_id"]))) == wanted, prefix


def test_data_center_10_0_whose_search_stops_at_100_users_still_syncs_every_user_once(
    start_worker, broker, database
):
    """Jira 10.0-10.2 cut ``startAt + maxResults`` at 100 and have no ``/user/list``: the
    scan learns the cap from the answers (worker/partition.py)."""
    with FakeJira(flavor="datacenter", has_user_list=False, search_cap=100) as dc10:
        dc10.add_users(directories.varied(3000))
        everyone = {u["key"] for u in dc10.users()}
        start_worker(jira_url=dc10.url), start_worker(jira_url=dc10.url)

        run_id = request_bulk(broker)
        run = wait_run_finished(database, run_id, timeout=180)

        assert counts(run) == expect(3000, created=3000)
        assert sorted(run_users(database, run_id)) == sorted(everyone)
        assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(everyone)
        assert run["missing_checked"] == 0  # no asset's user went unlisted


def test_killing_the_worker_mid_search_scan_still_syncs_every_user_exactly_once(
    start_worker, broker, database, old_dc
):
    old_dc.add_sample_users(2500, native_every=20)
    old_dc.add_users(directories.tower(1100, stem="ab.c", display_name=None))
    everyone = {u["key"] for u in old_dc.users()}
    old_dc.set_delay(0.01)  # a slow Jira keeps the scan going long enough to be cut
    workers = [start_worker(jira_url=old_dc.url, env=PAGE) for _ in range(2)]
    run_id = request_bulk(broker)
    wait_for(
        lambda: (r := run_summary(database, run_id)) and r["matched"] >= 800,
        what="the search scan to be under way",
    )
    [victim] = [w for w in workers if "scanning Jira" in w.log()]
    victim.kill()  # SIGKILL, between two pages or in the middle of one
    assert run_summary(database, run_id)["state"] == "fanning_out"

    run = wait_run_finished(database, run_id, timeout=240)

    assert counts(run) == expect(len(everyone), created=len(everyone))
    assert sorted(run_users(database, run_id)) == sorted(everyone)
    assert sorted(a["jira_id"] for a in user_assets(database)) == sorted(everyone)
    [survivor] = [w for w in workers if w is not victim]
    assert "(resuming)" in survivor.log()
