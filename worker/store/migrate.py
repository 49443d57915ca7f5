"""Schema migrations (yoyo, SQL files in ``migrations/``), safe to run from every replica,
and while replicas of the previous version still run.

A PostgreSQL advisory lock serialises concurrent runs; the ones that wait find nothing
left to apply. The database itself is created first if it does not exist yet.

A migration waits for its locks with a bound. ``ALTER TABLE`` needs its table to itself:
waiting behind a long transaction, it would make every batch that touches the table
queue behind it, and the workers stop. So each of its statements waits at most
``LOCK_TIMEOUT_MS`` for a lock; past it the migration is rolled back, the line says
which transaction is in the way, and it is tried again after a pause that doubles, for
up to ``PATIENCE`` seconds in all: meanwhile the batches flow. A database that is down
or failing over is waited for the same way. Past the bound, ``migrate`` gives up with
one line (the command exits 1).

Any libpq URL works, multi-host failover pairs included
(``postgresql://u@a:5432,b:5432/db?target_session_attrs=read-write``): yoyo's own URL
parser takes one host and an integer port, so the hosts, ports and every other
parameter reach libpq as query arguments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from worker.errors import StoreUnavailable
from worker.store.locks import lock_migrations
from worker.store.pool import connection_options, translate_errors

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"  # worker/migrations
LOCK_TIMEOUT_MS = 2000  # the longest a migration's statement waits for a lock
PATIENCE = 600.0  # seconds of tries before migrate gives up
PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # between tries; then the last


def migrate(
    url: str,
    *,
    source: Path = MIGRATIONS,
    patience: float = PATIENCE,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Bring the schema up to date; return the ids of the migrations applied.

    :param source: the directory of migration files.
    :param patience: seconds to go on trying while a lock or the database is not to be had.
    :raises StoreUnavailable: still not applied after ``patience`` seconds.
    """
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return _migrate_once(url, source)
        except StoreUnavailable as exc:
            pause = PAUSES[min(tries - 1, len(PAUSES) - 1)]
            waited = time.monotonic() - started
            if waited + pause > patience:
                raise StoreUnavailable(
                    f"migrations not applied after {tries} tries in {waited:.0f}s: {exc}"
                ) from exc
            log.warning("%s; trying again in %gs (try %d)", exc, pause, tries)
            sleep(pause)


def _migrate_once(url: str, source: Path) -> list[str]:
    options = {**connection_options(url), "application_name": "assetsync migrate"}
    with translate_errors():
        ensure_database(url)
        with psycopg.connect(url, autocommit=True, **options) as lock_conn:
            lock_migrations(lock_conn)
            backend = get_backend(yoyo_url(url, lock_timeout_ms=LOCK_TIMEOUT_MS))
            migrations = read_migrations(str(source))
            try:
                todo = backend.to_apply(migrations)
                try:
                    backend.apply_migrations(todo)
                except psycopg.errors.LockNotAvailable as exc:
                    left = backend.to_apply(migrations)
                    raise StoreUnavailable(
                        f"migration {left[0].id if left else '?'} waited over"
                        f" {LOCK_TIMEOUT_MS / 1000:g}s for a lock; {_in_the_way(lock_conn)}"
                    ) from exc
            finally:
                backend.connection.close()
    applied = [m.id for m in todo]
    log.info("migrations applied: %s", ", ".join(applied) or "none (up to date)")
    return applied


def _in_the_way(conn: psycopg.Connection[Any]) -> str:
    """The oldest open transaction of another connection of this database, in words: the
    likely holder of the lock a migration waited for."""
    row = conn.execute(
        "SELECT pid, application_name, state, now() - xact_start, left(query, 100)"
        " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND xact_start IS NOT NULL ORDER BY xact_start LIMIT 1"
    ).fetchone()
    if row is None:
        return "no transaction holds it any more"
    pid, app, state, age, query = row
    return (
        f"the oldest open transaction is pid {pid} ({app or 'no application name'!r},"
        f" {state}, open for {age.total_seconds():.0f}s): {query!r}"
    )


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when the server does not have it yet.

    libpq reports a missing database only in its (localized) message text, so rather
    than parse that, ask the server's maintenance database whether it exists.
    """
    try:
        psycopg.connect(url, connect_timeout=10).close()
        return
    except psycopg.OperationalError:
        name = str(psycopg.conninfo.conninfo_to_dict(url).get("dbname", ""))
        maintenance = psycopg.conninfo.make_conninfo(url, dbname="postgres")
        with psycopg.connect(maintenance, autocommit=True, connect_timeout=10) as conn:
            if not name:
                raise
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            try:
                if found.fetchone() is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("created database %s", name)
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # another replica was quicker (at the same instant: UniqueViolation)
    # A racing replica's CREATE DATABASE may not have committed yet: wait for it. Any
    # other trouble (a wrong password, say) is raised by the last attempt.
    for _ in range(40):
        try:
            psycopg.connect(url, connect_timeout=10).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.25)
    psycopg.connect(url, connect_timeout=10).close()  # still failing: say why


def yoyo_url(url: str, *, lock_timeout_ms: int | None = None) -> str:
    """yoyo wants a URL whose scheme names the driver (ours is psycopg 3); accept any
    libpq connection string and rebuild it as one. Everything but the user, password
    and database goes in the query, which yoyo hands to libpq untouched: several hosts
    and ports (a failover pair) included, which yoyo's parser would refuse."""
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(url).items()}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    dbname = quote(params.pop("dbname", ""), safe="")
    params.setdefault("host", "localhost")
    params.setdefault("target_session_attrs", "read-write")
    if lock_timeout_ms is not None:
        params["options"] = f"{params.get('options', '')} -c lock_timeout={lock_timeout_ms}".strip()
    return f"postgresql+psycopg://{auth}/{dbname}?{urlencode(params)}"
