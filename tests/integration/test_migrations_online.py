"""Migrations applied while workers run: a migration that waits for a lock held by a long
transaction neither blocks the workers' batches nor waits for ever."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import psycopg
import pytest

from lab.harness import login_body, wait_for
from worker.errors import StoreUnavailable
from worker.store import migrate as migrations


def with_extra_migration(tmp_path: Path, body: str) -> tuple[Path, str]:
    """The project's migrations plus one of the test's own, after the newest."""
    source = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS, source)
    newest = max(p.stem for p in source.glob("*.sql"))
    name = "9999_online_test"
    (source / f"{name}.sql").write_text(f"-- depends: {newest}\n{body}\n")
    return source, name


def synced(database: str, key: str) -> bool:
    """Whether the user's asset is there; a read stuck behind a lock queue says no."""
    try:
        with psycopg.connect(database, options="-c statement_timeout=1000") as conn:
            row = conn.execute("SELECT count(*) FROM user_assets WHERE jira_id = %s", [key])
            return bool(row.fetchone()[0])  # type: ignore[index]
    except psycopg.errors.QueryCanceled:
        return False


def waiting_for_a_lock(database: str) -> bool:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE%'"
        ).fetchone()
    return bool(row and row[0])


def test_a_migration_behind_a_long_transaction_lets_batches_flow_and_applies_after_it(
    start_worker, broker, jira, database, tmp_path, caplog
):
    source, name = with_extra_migration(tmp_path, "ALTER TABLE assets ADD COLUMN note text;")
    users = [jira.add_user(f"user{i}", display_name=f"User {i}") for i in range(6)]
    start_worker()

    # A report someone left open: it holds a lock on the assets table for as long.
    report = psycopg.connect(database)
    report.execute("SELECT count(*) FROM assets").fetchone()
    applied: list[str] = []
    thread = threading.Thread(
        target=lambda: applied.extend(migrations.migrate(database, source=source)), daemon=True
    )
    try:
        thread.start()
        wait_for(lambda: waiting_for_a_lock(database), timeout=15, what="the ALTER to wait")

        # Meanwhile logins are synced: no batch queues behind the waiting ALTER TABLE.
        for user in users:
            published = time.monotonic()
            broker.publish_raw(login_body(username=user["name"]), routing_key="user-logged-in")
            wait_for(lambda user=user: synced(database, user["key"]), timeout=10, what="a login")
            assert time.monotonic() - published < migrations.LOCK_TIMEOUT_MS / 1000 + 3
        assert thread.is_alive()  # still waiting for its lock, trying again now and then
        assert "waited over 2s for a lock; the oldest open transaction is pid" in caplog.text
    finally:
        report.close()  # the long transaction ends: the migration gets its lock
    thread.join(timeout=60)
    assert applied == [name]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT note FROM assets LIMIT 1").fetchone() == (None,)


def test_a_migration_that_never_gets_its_lock_gives_up_with_one_line(database, tmp_path):
    source, name = with_extra_migration(tmp_path, "ALTER TABLE assets ADD COLUMN note text;")
    with psycopg.connect(database) as report:
        report.execute("SELECT count(*) FROM assets").fetchone()
        with pytest.raises(StoreUnavailable) as failed:
            migrations.migrate(database, source=source, patience=4.0)
    assert f"migration {name} waited over 2s for a lock" in str(failed.value)
    assert "migrations not applied after" in str(failed.value)
    assert migrations.migrate(database, source=source) == [name]  # nothing half-applied
