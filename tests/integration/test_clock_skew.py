"""A replica whose wall clock is off (a worker run under libfaketime) decides nothing:
freshness stamps are the database's time, so the newest Jira data wins whichever replica
wrote the older data and whichever way its clock is off."""

from __future__ import annotations

import psycopg
import pytest

from lab.harness import asset_of, login_body, request_bulk, wait_for, wait_run_finished
from tests.skewed_clock import libfaketime, skewed_env

pytestmark = pytest.mark.skipif(
    libfaketime() is None, reason="libfaketime is not installed (apt-get install faketime)"
)

TEN_MINUTES = 600


def start(start_worker, skew: int):
    if not skew:
        return start_worker()
    return start_worker(env=skewed_env(skew), module="tests.skewed_clock")


def full_name(database: str, key: str) -> str | None:
    asset = asset_of(database, key)
    return asset["fields"]["Full name"] if asset else None


@pytest.mark.parametrize(
    ("first", "second"),
    [(TEN_MINUTES, 0), (0, -TEN_MINUTES)],
    ids=["older-data-from-a-clock-ahead", "newer-data-from-a-clock-behind"],
)
def test_newer_jira_data_wins_whichever_replicas_clock_is_off(
    start_worker, broker, jira, database, first: int, second: int
):
    users = {n: jira.add_user(n, display_name=f"{n.title()} Before") for n in ("ann", "bob", "cy")}
    keys = {n: u["key"] for n, u in users.items()}

    # The first replica syncs everyone, by a bulk run and a login.
    older = start(start_worker, first)
    run = wait_run_finished(database, request_bulk(broker), timeout=60)
    assert (run["state"], run["created"]) == ("done", 3)
    jira.update_user("cy", display_name="Cy Login")
    broker.publish_raw(login_body(username="cy"), routing_key="user-logged-in")
    wait_for(lambda: full_name(database, keys["cy"]) == "Cy Login", what="cy's login")
    assert older.terminate() == 0

    # Then Jira changes, and the second replica syncs the change: by logins and by a run.
    for name in users:
        jira.update_user(name, display_name=f"{name.title()} After")
    newer = start(start_worker, second)
    for name in ("ann", "cy"):
        broker.publish_raw(login_body(username=name), routing_key="user-logged-in")
    for name in ("ann", "cy"):
        wait_for(
            lambda name=name: full_name(database, keys[name]) == f"{name.title()} After",
            what=f"{name}'s newer data from the second replica's login",
        )
    run = wait_run_finished(database, request_bulk(broker), timeout=60)
    assert (run["state"], run["updated"], run["unchanged"]) == ("done", 1, 2)
    assert full_name(database, keys["bob"]) == "Bob After"

    with psycopg.connect(database) as conn:  # no stamp from the future, or far in the past
        (ahead, behind) = conn.execute(
            "SELECT max(jira_seen_at) > now(), min(jira_seen_at) < now() - interval '5 minutes'"
            " FROM assets"
        ).fetchone()
    assert not ahead and not behind
    assert newer.terminate() == 0
