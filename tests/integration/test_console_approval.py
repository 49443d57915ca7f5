"""Approving a mass change on the console: the approval is recorded, and the workers
carry it out in the background, each user looked up in Jira again, across a replica
that dies mid-way, exactly once per user, with what came of each on the run's page."""

from __future__ import annotations

import contextlib
import re

import psycopg
import pytest

from lab.harness import asset_of, request_bulk, wait_for, wait_run_finished, worker_env
from tests.console_support import ConsoleProcess, console_role, csrf, signed_in

LOOKUP = "/rest/api/2/user?key="


def approval_row(database: str) -> dict:
    with psycopg.connect(database) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute("SELECT * FROM missing_approvals ORDER BY id").fetchall()
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture
def console(infra, database, broker, jira, tmp_path):
    """The console with exactly its database role's grants (the workers: the owner's)."""
    jira.accounts.add("ann", "pw", administrator=True, display_name="Ann Admin")
    with console_role(infra.database_url, database) as url:
        env = worker_env(
            amqp_url=infra.amqp_url, database_url=url, topology=broker.topology, jira_url=jira.url
        )
        process = ConsoleProcess(env=env, log_path=tmp_path / "console.log").start()
        yield process
        process.terminate()
    assert "permission denied" not in process.log()


def test_an_approval_is_carried_out_in_the_background_across_a_replica_that_dies(
    console, start_worker, broker, jira, database
):
    jira.add_sample_users(125)
    settings = {"ASSETSYNC_MISSING_LIMIT": "2", "ASSETSYNC_APPROVAL_LEASE": "2"}
    first = start_worker(env=settings)
    wait_run_finished(database, request_bulk(broker))
    leaving = sorted(jira.users(), key=lambda u: u["key"])[:110]
    for user in leaving:
        jira.remove_user(user["key"])
    run = wait_run_finished(database, request_bulk(broker))
    assert (run["state"], run["missing"]) == ("failed", 110)
    back_before, refused, back_during = leaving[0], leaving[50], leaving[-1]
    jira.add_user(back_before["name"], key=back_before["key"])  # back before the approval
    jira.fail_next(1, status=400, path_contains=f"key={refused['key']}")

    # Once the first batch of 100 is settled and one more user looked up, Jira stalls:
    # the replica dies there, holding its lease. One user of the rest comes back.
    def stall() -> None:
        jira.set_delay(60, path_contains=LOOKUP)
        jira.add_user(back_during["name"], key=back_during["key"])

    jira.after_requests(101, stall, path_contains=LOOKUP)
    before = jira.request_count(LOOKUP)
    with contextlib.closing(signed_in(console)) as http:
        confirm = http.get(f"/runs/{run['run_id']}/approve")
        assert "Mark 110 assets missing?" in confirm.text
        done = http.post(f"/runs/{run['run_id']}/approve", data={"csrf": csrf(confirm)})
        assert (done.status_code, done.headers["location"]) == (
            303,
            f"/runs/{run['run_id']}#approval-heading",
        )  # at once: the workers do the marking
        again = http.post(f"/runs/{run['run_id']}/approve", data={"csrf": csrf(confirm)})
        assert again.status_code == 303  # a second click joins the approval under way

        wait_for(lambda: jira.request_count(LOOKUP) - before >= 102, what="the stalled look-up")
        first.kill()
        page = http.get(f"/runs/{run['run_id']}").text
        assert re.search(r'aria-valuenow="100" aria-valuemax="110"', page)
        assert "100 of 110 users looked up" in page
        jira.set_delay(0, path_contains=LOOKUP)
        start_worker(env=settings)  # takes over once the dead replica's lease lapsed
        wait_for(lambda: approval_row(database)["finished_at"], timeout=30, what="the approval")
        page = http.get(f"/runs/{run['run_id']}").text
        home = http.get("/").text

    # The second replica looked up only the ten users the first had not settled.
    assert jira.request_count(LOOKUP) - before == 100 + 2 + 10
    row = approval_row(database)
    assert (row["checked"], row["marked"], row["came_back"], row["failed"]) == (110, 107, 2, 1)
    assert "Done: 107 marked missing, 2 came back, 1 failed." in page
    assert "Approve a mass change" in page  # the one Jira refused to say about waits
    assert re.search(rf"<td>{refused['key']}</td><td>\d+</td><td>Jira did not say", page)
    for user in (back_before, back_during, refused):
        assert asset_of(database, user["key"])["state"] == "active"
    for user in leaving[1:50] + leaving[51:-1]:
        asset = asset_of(database, user["key"])
        assert (asset["state"], asset["fields"]["Active"]) == ("missing", False)
    assert "mark missing approved: " + str(run["run_id"]) in home  # who approved, when
    assert "marked missing (approved): " + str(run["run_id"]) in home  # what it did
    with psycopg.connect(database) as conn:
        entries = conn.execute(
            "SELECT actor, action FROM audit_log WHERE subject = %s ORDER BY id",
            [str(run["run_id"])],
        ).fetchall()
    assert entries == [("ann", "mark missing approved"), ("ann", "marked missing (approved)")]
