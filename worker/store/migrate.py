"""Schema migrations (yoyo, SQL files in ``migrations/``), safe to run from every replica.

A PostgreSQL advisory lock serialises concurrent runs; the ones that wait find nothing
left to apply. The database itself is created first if it does not exist yet.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from worker.store.locks import lock_migrations
from worker.store.pool import translate_errors

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"  # worker/migrations


def migrate(url: str) -> list[str]:
    """Bring the schema up to date; return the ids of the migrations applied."""
    with translate_errors():
        ensure_database(url)
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as lock_conn:
            lock_migrations(lock_conn)
            backend = get_backend(yoyo_url(url))
            try:
                todo = backend.to_apply(read_migrations(str(MIGRATIONS)))
                backend.apply_migrations(todo)
            finally:
                backend.connection.close()
    applied = [m.id for m in todo]
    log.info("migrations applied: %s", ", ".join(applied) or "none (up to date)")
    return applied


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


def yoyo_url(url: str) -> str:
    """yoyo wants a URL whose scheme names the driver (ours is psycopg 3); accept any
    libpq connection string and rebuild it as one."""
    params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(url).items()}
    user = quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = params.pop("host", "localhost")
    port = params.pop("port", "5432")
    dbname = quote(params.pop("dbname", ""), safe="")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql+psycopg://{auth}{host}:{port}/{dbname}{query}"
