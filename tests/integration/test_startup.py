"""Start-up: migrations from several replicas at once, and settings that do not fit the
asset store stop the worker with one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from lab.harness import ROOT, asset_of, login_body, wait_for


def test_migrate_from_three_replicas_at_once_on_a_new_database(infra):
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    env = {"ASSETSYNC_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    try:
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "worker", "migrate"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [r.communicate(timeout=60)[0].decode() for r in runs]
        assert [r.returncode for r in runs] == [0, 0, 0], outputs
        assert sum("migrations applied: 0001_asset_store" in o for o in outputs) == 1
        with psycopg.connect(url) as conn:
            fields = conn.execute(
                "SELECT f.name, f.field_type FROM asset_fields f JOIN asset_types t"
                " ON t.id = f.asset_type_id WHERE t.name = 'Employee' ORDER BY f.id"
            ).fetchall()
        assert fields == [
            ("User", "user"),
            ("Username", "text"),
            ("Full name", "text"),
            ("E-mail", "text"),
            ("Active", "boolean"),
        ]
    finally:
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ASSETSYNC_ASSET_TYPE": "Laptop"},
            "ASSETSYNC_ASSET_TYPE: no asset type 'Laptop' in the asset store (it has: Employee)",
        ),
        (
            {"ASSETSYNC_FIELD_MAP": json.dumps({"name": "Username", "locale": "Locale"})},
            "ASSETSYNC_FIELD_MAP: asset type 'Employee' has no field 'Locale' (mapped from locale)",
        ),
        (
            {"ASSETSYNC_FIELD_MAP": json.dumps({"name": "Username", "displayName": "Active"})},
            "ASSETSYNC_FIELD_MAP: displayName (text) cannot go into 'Active', a field of type boolean",
        ),
        (
            {"ASSETSYNC_FIELD_MAP": json.dumps({"displayName": "Full name"})},
            "invalid setting ASSETSYNC_FIELD_MAP: the username mapping is mandatory",
        ),
        (
            {"ASSETSYNC_USER_FIELD": "Username"},
            "ASSETSYNC_USER_FIELD: field 'Username' is of type text, not user",
        ),
        (
            {"ASSETSYNC_JIRA_TOKEN": "wrong"},
            "Jira answered 401 to /rest/api/2/serverInfo: check ASSETSYNC_JIRA_USERNAME",
        ),
    ],
    ids=[
        "unknown asset type",
        "unknown field",
        "type mismatch",
        "no username mapping",
        "user field not of type user",
        "bad Jira credentials",
    ],
)
def test_settings_that_do_not_fit_stop_the_worker_with_one_clear_line(start_worker, env, line):
    worker = start_worker(env=env, wait=False)
    assert worker.wait(timeout=30) == 78
    log = worker.log()
    assert line in log
    assert "Traceback" not in log
    assert "wrong" not in log.replace(line, "")  # the secret is never logged


def test_worker_waits_for_a_jira_that_is_still_starting(start_worker, broker, jira, database):
    jira.add_user("jdoe")
    jira.fail_next(2, status=503, path_contains="/myself")
    worker = start_worker()

    broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, "JIRAUSER10000"), what="the asset")

    # It asked Jira who it is until Jira answered: twice refused, waited out, then once
    # more, before it took its first message (0.2.0's test passed without any of it).
    assert jira.request_count("/myself") == 3
    assert (
        worker.log().count("Jira not reachable yet (Jira answered 503 to /rest/api/2/myself)") == 2
    )
    assert worker.log().index("connected to Jira") < worker.log().index("consuming ")


def test_user_lookup_is_index_backed(database):
    with psycopg.connect(database) as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables; ask what the plan can use
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT asset_id FROM asset_values"
                " WHERE field_id = 1 AND is_unique AND value_user = ANY(ARRAY['JIRAUSER10000'])"
            )
        )
    assert "asset_values_unique_user" in plan


def test_database_refuses_a_second_asset_for_the_same_user(database):
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO folders (name) VALUES ('Employees')")
        for asset_id in (1, 2):
            conn.execute(
                "INSERT INTO assets (id, asset_type_id, folder_id) VALUES (%s, 1, 1)", [asset_id]
            )
        conn.execute(
            "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type, is_unique,"
            " value_user) VALUES (1, 1, 1, 'user', true, 'JIRAUSER10000')"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type,"
                " is_unique, value_user) VALUES (2, 1, 1, 'user', true, 'JIRAUSER10000')"
            )


def test_user_assets_lookup_by_jira_id_is_index_backed(database):
    with psycopg.connect(database) as conn:
        conn.execute("INSERT INTO folders (name) VALUES ('Employees')")
        conn.execute(
            "INSERT INTO assets (id, asset_type_id, folder_id)"
            " SELECT i, 1, 1 FROM generate_series(1, 20000) i"
        )
        conn.execute(
            "INSERT INTO asset_values (asset_id, asset_type_id, field_id, field_type,"
            " is_unique, value_user) SELECT i, 1, 1, 'user', true, 'JIRAUSER' || i"
            " FROM generate_series(1, 20000) i"
        )
        conn.execute("ANALYZE")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM user_assets WHERE jira_id = 'JIRAUSER10000'"
            )
        )
    assert "asset_values_unique_user" in plan
