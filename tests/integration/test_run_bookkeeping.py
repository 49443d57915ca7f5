"""What following and keeping runs costs: the same at a million users as at a thousand,
and old runs' per-user rows do not stay forever."""

from __future__ import annotations

import uuid

import psycopg
from yoyo import get_backend, read_migrations

from lab.harness import counts, request_bulk, run_summary, wait_run_finished
from worker.store.migrate import MIGRATIONS, ensure_database, yoyo_url


def add_run(conn, *, users: int, finished_days_ago: float | None = None) -> uuid.UUID:
    """A finished run as the workers leave it: its per-user rows and its counters."""
    run_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO sync_runs (id, requested_by, requested_at, state, finished_at)"
        " VALUES (%s, 'tests', now(), 'done', now() - make_interval(days => %s))",
        [run_id, finished_days_ago or 0],
    )
    conn.execute(
        "INSERT INTO sync_run_users (run_id, jira_id, outcome)"
        " SELECT %s, 'K' || i, 'created' FROM generate_series(1, %s) AS i",
        [run_id, users],
    )
    conn.execute(
        "INSERT INTO sync_run_counts (run_id, slot, matched, done, created)"
        " VALUES (%s, 0, %s, %s, %s)",
        [run_id, users, users, users],
    )
    return run_id


def buffers_read(conn, query: str, params: list) -> int:
    [[plan]] = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params).fetchone()
    top = plan["Plan"]
    return int(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))


def test_reading_a_runs_summary_costs_the_same_at_any_size(database):
    """Seen: each poll of `bulk_sync --wait` counted every row of the run."""
    with psycopg.connect(database) as conn:
        small = add_run(conn, users=1_000)
        large = add_run(conn, users=300_000)
        conn.execute("ANALYZE")
        query = "SELECT * FROM sync_run_summary WHERE run_id = %s"
        cost_small = buffers_read(conn, query, [small])
        cost_large = buffers_read(conn, query, [large])
        assert conn.execute(query, [large]).fetchone() is not None
    assert cost_large <= cost_small + 5, (cost_small, cost_large)
    assert cost_large < 50


def test_old_runs_lose_their_per_user_rows_and_keep_their_counts(
    start_worker, broker, jira, database
):
    with psycopg.connect(database) as conn:
        old = add_run(conn, users=50_000, finished_days_ago=40)
        recent = add_run(conn, users=100, finished_days_ago=1)
    jira.add_sample_users(20)
    start_worker()
    wait_run_finished(database, request_bulk(broker))

    with psycopg.connect(database) as conn:
        rows = dict(
            conn.execute(
                "SELECT run_id, count(*) FROM sync_run_users WHERE run_id = ANY(%s)"
                " GROUP BY run_id",
                [[old, recent]],
            ).fetchall()
        )
    assert rows == {recent: 100}
    assert counts(run_summary(database, str(old)))["created"] == 50_000
    assert run_summary(database, str(old))["users_pruned_at"] is not None
    assert run_summary(database, str(recent))["users_pruned_at"] is None


def test_the_retention_is_a_setting(start_worker, broker, jira, database):
    with psycopg.connect(database) as conn:
        run = add_run(conn, users=10, finished_days_ago=3)
    jira.add_sample_users(5)
    start_worker(env={"ASSETSYNC_RUN_RETENTION_DAYS": "2"})
    wait_run_finished(database, request_bulk(broker))
    with psycopg.connect(database) as conn:
        left = conn.execute("SELECT count(*) FROM sync_run_users WHERE run_id = %s", [run])
        assert left.fetchone()[0] == 0


def test_upgrading_keeps_the_counts_of_earlier_runs(infra):
    """Runs recorded before the counters existed are counted once, by the migration."""
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    ensure_database(url)
    try:
        backend = get_backend(yoyo_url(url))
        every = read_migrations(str(MIGRATIONS))
        with backend.lock():
            backend.apply_migrations(backend.to_apply(every.filter(lambda m: m.id < "0006")))
        run_id = uuid.uuid4()
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO sync_runs (id, requested_by, requested_at, state)"
                " VALUES (%s, 'old', now(), 'processing')",
                [run_id],
            )
            conn.execute(
                "INSERT INTO sync_run_users (run_id, jira_id, outcome, deactivated) VALUES"
                " (%s, 'a', 'created', false), (%s, 'b', 'updated', true), (%s, 'c', NULL, false)",
                [run_id, run_id, run_id],
            )
        with backend.lock():
            backend.apply_migrations(backend.to_apply(every))
        backend.connection.close()
        run = run_summary(url, str(run_id))
        assert (run["matched"], run["done"], run["created"], run["updated"]) == (3, 2, 1, 1)
        assert run["deactivated"] == 1
    finally:
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_counts_stay_exact_when_outcomes_are_recorded_twice(database):
    """A redelivered batch changes no row, so it counts nothing."""
    from worker.store import Change, runs

    with psycopg.connect(database) as conn:
        run_id = uuid.uuid4()
        conn.execute(
            "INSERT INTO sync_runs (id, requested_by, requested_at, state)"
            " VALUES (%s, 't', now(), 'processing')",
            [run_id],
        )
        runs.add_matched(conn, run_id, ["a", "b"])
        runs.add_matched(conn, run_id, ["a", "b"])  # a page read again
        changes = [Change("a", 1, "created"), Change("b", 2, "unchanged", deactivated=True)]
        runs.record_outcomes(conn, run_id, changes)
        runs.record_outcomes(conn, run_id, changes)  # the same batch again
        runs.record_failures(conn, run_id, [("a", "late failure")])  # settled already
    run = run_summary(database, str(run_id))
    assert counts(run) == {
        "matched": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 1,
        "deactivated": 1,
        "missing": 0,
        "failed": 0,
    }
    assert run["done"] == 2
