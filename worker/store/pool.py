"""The replica's connection pool: transactions, connections for locks, error translation,
the database's clock, and a deadline on every wait for the server.

A database that goes silent (a dropped route, a stuck proxy) leaves a connection open
with nothing coming back; TCP keepalives cannot tell when something in between still
answers them. So every wait for the server is bounded here: past the deadline the
connection is closed and the wait ends as ``StoreDown`` (transient).

Failover. Connections are opened with ``target_session_attrs=read-write`` unless the URL
says otherwise, so that libpq skips a standby or a read-only server (and, given a
multi-host URL, tries the next host). A connection can still turn read-only, or end,
under us: a connection that met an error saying the store is down
(``worker.store.sqlstates``) is closed rather than given back, and the pool's check
before each use drops one whose server reports it read-only or in recovery, so that no
batch draws it again once the database takes writes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool

from worker.errors import StoreDown, StoreRejected, StoreUnavailable
from worker.store.clock import DatabaseClock
from worker.store.sqlstates import Verdict, verdict

DEFAULT_DEADLINE = 60.0
# Seconds a caller waits for a connection. The pool has one to hand at once unless the
# database refuses new connections (down, read-only); a consuming loop blocked longer than
# a couple of heartbeats would lose its broker connection as well.
POOL_WAIT = 2.0
# psycopg_pool tries a failed connection again with doubling delays (1 s, 2 s, 4 s, ...)
# for as long as this: at its default (5 minutes) the next try could come a minute after
# the database is back. Past it, the next request for a connection (the loops ask every
# second while the store is down) starts a new round at once.
RECONNECT_FOR = 2.0


class Store:
    """One connection pool per worker replica.

    :param url: a libpq connection string or ``postgresql://`` URL.
    :param max_size: connections in the pool (one per thread that writes).
    :param deadline: seconds any one round trip to the server may take.
    """

    def __init__(self, *, url: str, max_size: int = 6, deadline: float = DEFAULT_DEADLINE) -> None:
        self._url, self._max_size, self._deadline = url, max_size, deadline
        self._pool = self._new_pool()
        self._clock = DatabaseClock(self._read_clock)

    def _new_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        deadline = self._deadline
        return psycopg_pool.ConnectionPool(
            self._url,
            min_size=1,
            max_size=self._max_size,
            open=False,
            timeout=POOL_WAIT,
            reconnect_timeout=RECONNECT_FOR,
            kwargs=connection_options(self._url),
            connection_class=_BoundedConnection,
            configure=lambda conn: _configure(conn, deadline),
            # A connection killed, or turned read-only, while it sat in the pool is found
            # out before use, rather than failing the batch that draws it.
            check=_check,
        )

    def open(self) -> None:
        try:
            self._pool.open(wait=True, timeout=min(15.0, self._deadline))
        except psycopg_pool.PoolTimeout as exc:
            # A pool that failed to open is closed for good: the next try needs a new one.
            self._pool.close()
            self._pool = self._new_pool()
            raise StoreUnavailable("cannot connect to the asset store database") from exc

    def close(self) -> None:
        self._pool.close()

    def pool_stats(self) -> dict[str, int]:
        """The pool's own counters (``pool_size``, ``pool_available``, ...)."""
        return dict(self._pool.get_stats())

    def now(self) -> datetime:
        """The database's time, shared by every replica: what a Jira snapshot is stamped
        with (``jira_seen_at``), so that no replica's clock decides which data wins."""
        return self._clock.now()

    def _read_clock(self) -> datetime:
        with self.connection() as conn:
            row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers now and takes writes (for the readiness probe)."""
        return self.takes_writes(timeout)

    def takes_writes(self, timeout: float = 1.0) -> bool:
        """Whether the database takes writes now: a connection can be had within
        ``timeout`` seconds, and it is neither read-only nor a standby's."""
        try:
            with translate_errors(), self._pool.connection(timeout=timeout) as conn:
                with _dropped_when_down(conn):
                    row = conn.execute(
                        "SELECT pg_is_in_recovery()"
                        " OR current_setting('transaction_read_only')::bool"
                    ).fetchone()
                if row is None or row[0]:
                    conn.close()  # a read-only connection stays so: never hand it out
                    return False
        except StoreUnavailable:
            return False
        return True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction; commits on success. Errors translated."""
        with (
            translate_errors(),
            self._pool.connection() as conn,
            _dropped_when_down(conn),
            conn.transaction(),
        ):
            yield conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own, in autocommit mode (for locks that last as long as it)."""
        with translate_errors(), self._pool.connection() as conn, _dropped_when_down(conn):
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.autocommit = False


def connection_options(url: str) -> dict[str, Any]:
    """What every connection of the worker is opened with, beside ``url``. Connections must
    take writes: ``target_session_attrs=read-write`` (unless the URL sets its own) has
    libpq refuse a read-only server or a standby and, in a multi-host URL, try the
    next host."""
    options: dict[str, Any] = {"connect_timeout": 10, "application_name": "assetsync"}
    if not psycopg.conninfo.conninfo_to_dict(url).get("target_session_attrs"):
        options["target_session_attrs"] = "read-write"
    return options


class _BoundedConnection(psycopg.Connection[Any]):
    """A connection whose every wait for the server ends after ``deadline`` seconds."""

    deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None or self.deadline is None:
            return super().wait(gen, interval, timeout)
        started = time.monotonic()
        try:
            return super().wait(gen, interval, self.deadline)
        except psycopg.OperationalError as exc:
            if time.monotonic() - started < self.deadline:
                raise
            # Mid-protocol and silent: the connection cannot be trusted again.
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from the database within {self.deadline:g}s"
            ) from exc


def _configure(conn: psycopg.Connection[Any], deadline: float) -> None:
    """Have PostgreSQL probe this connection's TCP peer after 10 s of silence and drop
    it after three unanswered probes 5 s apart (its defaults: hours). A replica whose
    host dies then loses its connection, and with it the run lock a bulk fan-out holds,
    within about 25 s, so that the request RabbitMQ hands to another replica can go on
    (``fan_out.RUN_LOCK_WAIT``). Over a Unix socket these settings do nothing."""
    for name, value in (
        ("tcp_keepalives_idle", 10),
        ("tcp_keepalives_interval", 5),
        ("tcp_keepalives_count", 3),
    ):
        conn.execute(f"SET {name} = {value}")
    conn.commit()
    if isinstance(conn, _BoundedConnection):
        conn.deadline = deadline


def _check(conn: psycopg.Connection[Any]) -> None:
    """The pool's check before handing a connection out: alive (a round trip), and its
    server does not report the connection read-only or in hot standby (PostgreSQL 14 and
    later report both as they change, e.g. on a reload of the configuration)."""
    psycopg_pool.ConnectionPool.check_connection(conn)
    status = conn.info.parameter_status
    if "on" in (status("default_transaction_read_only"), status("in_hot_standby")):
        conn.close()
        raise psycopg.OperationalError("the connection is read-only now: dropped from the pool")


def _verdict(exc: psycopg.Error) -> Verdict:
    return verdict(exc.sqlstate, client_connection_error=isinstance(exc, psycopg.OperationalError))


@contextlib.contextmanager
def _dropped_when_down(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Close ``conn`` when it meets an error saying the store is down, so that the pool
    replaces it: a connection that found the database read-only (25006) stays read-only
    after the database takes writes again."""
    try:
        yield
    except psycopg.Error as exc:
        if _verdict(exc) == "down" and not conn.closed:
            conn.close()
        raise


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """psycopg's errors as ours, by SQLSTATE (``worker.store.sqlstates``): the store down
    (a failover, read-only, unreachable), busy (a deadlock, a lock timeout), or refusing
    the change (a constraint, a bad value)."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise StoreDown(f"asset store unavailable: {exc}".strip()) from exc
    except psycopg.Error as exc:
        kind = _verdict(exc)
        if kind == "down":
            raise StoreDown(f"asset store unavailable: {exc}".strip()) from exc
        if kind == "busy":
            raise StoreUnavailable(f"asset store busy: {exc}".strip()) from exc
        raise StoreRejected(f"asset store refused the change: {exc}".strip()) from exc
