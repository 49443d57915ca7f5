"""Who may read what in the asset store: the role that follows runs (admin script,
scheduled sync) cannot read the signing keys or write assets; the workers' role can.

The test makes a database owned by a non-superuser role of its own (as a DBA would give
the workers), migrates it as that role, applies ``deploy/postgres/roles.sql`` with its
own login-role names, and connects as each. Roles belong to the whole server: the
test's own are dropped at the end; the group roles the migration creates stay (they
hold grants only in databases that have the tables).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from lab.harness import ROOT
from lab.servers import Servers
from schemas.messages import BulkSyncRequested, utc_now
from worker.store.keys import load_ring
from worker.store.migrate import migrate
from worker.store.views import RunStore

ROLES_SQL = (ROOT / "deploy" / "postgres" / "roles.sql").read_text()


@dataclass
class Deployment:
    worker_url: str
    admin_url: str
    console_url: str


@pytest.fixture
def deployment(infra: Servers) -> Iterator[Deployment]:
    tag = uuid.uuid4().hex[:8]
    owner, admin, console = f"t{tag}_workers", f"t{tag}_admin", f"t{tag}_console"
    name = f"assetsync_test_{tag}"
    url = psycopg.conninfo.make_conninfo
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        # The group roles exist before the first migrate on a server without CREATEROLE
        # for the workers; here they may exist already (other tests made them).
        for group in ("assetsync_status", "assetsync_console"):
            with contextlib.suppress(
                psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation
            ):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
        snippet = ROLES_SQL.replace("assetsync_admin", admin).replace(
            "assetsync_console_app", console
        )
        conn.execute(snippet)
    workers = url(infra.database_url, dbname=name, user=owner)
    migrate(workers)
    try:
        yield Deployment(
            worker_url=workers,
            admin_url=url(infra.database_url, dbname=name, user=admin),
            console_url=url(infra.database_url, dbname=name, user=console),
        )
    finally:
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for role in (admin, console, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def refused(url: str, statement: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def scheduled_request() -> BulkSyncRequested:
    return BulkSyncRequested(
        request_id=uuid.uuid4(), requested_at=utc_now(), requested_by="cron", dry_run=False
    )


def test_the_admin_role_follows_runs_and_records_a_scheduled_one_but_cannot_read_keys(deployment):
    request = scheduled_request()
    with RunStore(url=deployment.admin_url) as runs:
        assert runs.request_unless_recent(request, within=3600, publish=lambda: None) is None
        run = runs.get(request.request_id)
        assert run is not None and run.state == "fanning_out"
        assert [r.run_id for r in runs.recent()] == [request.request_id]
    status = subprocess.run(
        [sys.executable, "-m", "producers.bulk_sync", "status", str(request.request_id)],
        env={"ASSETSYNC_DATABASE_URL": deployment.admin_url, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert str(request.request_id) in status.stdout

    for statement in (
        "SELECT key FROM assetsync_private.signing_keys",
        "SELECT key FROM worker_keys",
        "UPDATE assets SET sync_state = 'missing'",
        "DELETE FROM asset_values",
        "INSERT INTO asset_types (name) VALUES ('Forged')",
        "UPDATE sync_runs SET state = 'done'",
        "INSERT INTO sync_run_users (run_id, jira_id) SELECT id, 'x' FROM sync_runs",
        "SELECT * FROM sync_settings",
    ):
        assert refused(deployment.admin_url, statement), statement


def test_the_console_role_reads_runs_and_settings_and_writes_only_its_own_tables(deployment):
    with psycopg.connect(deployment.console_url, autocommit=True) as conn:
        conn.execute("SELECT * FROM sync_run_summary").fetchall()
        conn.execute("SELECT * FROM sync_settings").fetchall()
        conn.execute(
            "INSERT INTO audit_log (actor, action, subject) VALUES ('admin', 'test', 'roles')"
        )
        conn.execute("SELECT name FROM asset_types").fetchall()
    for statement in (
        "SELECT key FROM assetsync_private.signing_keys",
        "SELECT key FROM worker_keys",
        "UPDATE assets SET sync_state = 'missing'",
        "UPDATE sync_run_counts SET done = 0",
    ):
        assert refused(deployment.console_url, statement), statement


def test_the_workers_role_reads_and_rotates_its_keys(deployment):
    from worker.store.keys import rotate

    with psycopg.connect(deployment.worker_url, autocommit=True) as conn:
        assert load_ring(conn).current.id == 1
        assert rotate(conn, window=60) == (2, 1)
        ring = load_ring(conn)
        conn.execute("UPDATE assets SET sync_state = sync_state")  # and writes assets
    assert (ring.current.id, [k.id for k in ring.previous]) == (2, [1])
