"""The asset store's pool through a database that turns read-only and back, on the test's
own database (``ALTER DATABASE ... SET default_transaction_read_only``, the cheap
imitation of a switchover): what it raises, and that no read-only connection is handed
out again once the database takes writes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from lab.faults import free_port
from lab.harness import ROOT, asset_of, login_body, wait_for
from worker.errors import StoreDown
from worker.store import Store


def read_only(maintenance_url: str, database_url: str, on: bool) -> None:
    """New connections of the database read-only (or not), and its connections ended."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    ident = sql.Identifier(str(name))
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        if on:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(ident)
            )
        else:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(ident)
            )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )


@pytest.fixture
def store_of(database: str) -> Iterator[type[Store]]:
    opened: list[Store] = []

    class Opened(Store):
        def __init__(self, **kw: object) -> None:
            super().__init__(url=kw.pop("url", database), **kw)  # type: ignore[arg-type]
            opened.append(self)

    yield Opened
    for store in opened:
        store.close()


def write(store: Store) -> int:
    """A write; the backend pid that made it."""
    with store.transaction() as conn:
        conn.execute("INSERT INTO folders (name) VALUES (gen_random_uuid()::text)")
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_while_the_database_is_read_only_a_write_says_the_store_is_down(infra, database, store_of):
    store = store_of()
    store.open()
    write(store)
    read_only(infra.database_url, database, True)
    try:
        with pytest.raises(StoreDown):  # not "refused the change": nobody's fault
            write(store)
        assert not store.takes_writes()
        assert not store.ping()  # the readiness probe: not ready, not dead
    finally:
        read_only(infra.database_url, database, False)
    # As a consuming loop does (worker.outages): ask until the store takes writes. The
    # pool may be between two of its reconnection tries when the database comes back.
    wait_for(store.takes_writes, timeout=10, what="the store to take writes again")
    write(store)


def test_a_pooled_connection_opened_read_only_is_not_handed_out_once_writes_are_back(
    infra, database, store_of
):
    # A URL that lets read-only connections in (the default asks libpq for read-write).
    read_only(infra.database_url, database, True)
    try:
        store = store_of(url=f"{database} target_session_attrs=any")
        store.open()  # its connection is read-only, and stays so
    finally:
        read_only(infra.database_url, database, False)
    for _ in range(3):
        write(store)  # the pool's check drops the read-only connection before use


def test_a_connection_that_met_a_read_only_error_is_dropped_from_the_pool(database, store_of):
    store = store_of(max_size=1)
    store.open()
    first = write(store)
    with pytest.raises(StoreDown), store.transaction() as conn:
        # As a connection whose server went read-only under it would answer (25006).
        conn.execute("SET LOCAL transaction_read_only = on")
        conn.execute("INSERT INTO folders (name) VALUES (gen_random_uuid()::text)")
    assert write(store) != first  # a new connection, not the one that met the error


def test_a_login_during_an_outage_longer_than_all_its_retries_is_synced_not_dead_lettered(
    infra, database, start_worker, broker, jira
):
    """The test's retry delays add up to 0.7 s; the database is read-only for 4 s. The
    login is held by the loop, not retried: no attempt spent, nothing dead-lettered."""
    user = jira.add_user("jdoe", display_name="Jane Doe")
    worker = start_worker()
    read_only(infra.database_url, database, True)
    try:
        broker.publish_raw(login_body(username="jdoe"), routing_key="user-logged-in")
        wait_for(lambda: "holding 1 delivery" in worker.log(), what="the login to be held")
        time.sleep(4)
        assert asset_of(database, user["key"]) is None
    finally:
        read_only(infra.database_url, database, False)
    wait_for(lambda: asset_of(database, user["key"]), what="the login once writes are back")
    assert "attempt 2" not in worker.log()
    assert broker.dead_letters() == []
    assert worker.proc is not None and worker.proc.poll() is None


def test_migrate_takes_a_multi_host_url_and_the_host_that_takes_writes(infra):
    """A failover pair's URL, its first host down: ``python -m worker migrate`` (whose
    migration library cannot parse several hosts) creates and migrates the database on
    the host that answers."""
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    server = psycopg.conninfo.conninfo_to_dict(infra.database_url)
    host, port = server.get("host") or "127.0.0.1", server.get("port") or 5432
    url = (
        f"postgresql://{server.get('user') or 'postgres'}@127.0.0.1:{free_port()},"
        f"{host}:{port}/{name}?target_session_attrs=read-write"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "migrate"],
            cwd=ROOT,
            env={"ASSETSYNC_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "migrations applied: 0001_asset_store" in done.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM asset_types").fetchone() == (1,)
    finally:
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
