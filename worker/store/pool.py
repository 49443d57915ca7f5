"""The replica's connection pool: transactions, sessions for locks, error translation,
and a deadline on every wait for the server.

A database that goes silent (a dropped route, a stuck proxy) leaves a connection open
with nothing coming back; TCP keepalives cannot tell when something in between still
answers them. So every wait for the server is bounded here: past the deadline the
connection is closed and the wait ends as ``StoreUnavailable`` (transient).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool

from worker.errors import StoreRejected, StoreUnavailable
from worker.store.clock import DatabaseClock

DEFAULT_DEADLINE = 60.0


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
            timeout=10,
            kwargs={"connect_timeout": 10, "application_name": "assetsync"},
            connection_class=_BoundedConnection,
            configure=lambda conn: _configure(conn, deadline),
            # A connection killed while it sat in the pool is found out before use,
            # rather than failing the batch that draws it.
            check=psycopg_pool.ConnectionPool.check_connection,
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
        """Whether the database answers now (for the readiness probe)."""
        try:
            with self._pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return False
        return True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction; commits on success. Errors translated."""
        with translate_errors(), self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own, in autocommit mode (for session-level locks)."""
        with translate_errors(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.autocommit = False


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
    host dies then loses its session, and with it the run lock a bulk fan-out holds,
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


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """psycopg's errors as ours: connection trouble is transient, refusals permanent."""
    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        # OperationalError covers lost connections, deadlocks and serialization failures.
        raise StoreUnavailable(f"asset store unavailable: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise StoreRejected(f"asset store refused the change: {exc}".strip()) from exc
