"""Which database errors say the store is down, busy, or refusing the change: by
SQLSTATE (``worker.store.sqlstates``), never by psycopg's exception class."""

from __future__ import annotations

import pytest

from worker.store.sqlstates import verdict


@pytest.mark.parametrize(
    "sqlstate",
    [
        "25006",  # read-only transaction: a standby, a demoted primary, a stale pooler
        "57P01",  # admin shutdown (pg_terminate_backend, a fast or immediate stop)
        "57P02",  # crash shutdown
        "57P03",  # cannot connect now (starting up, promoting)
        "57P05",  # idle_session_timeout (PostgreSQL's name)
        "25P03",  # idle_in_transaction_session_timeout: the connection is gone
        "08000",
        "08006",  # connection failure
        "08P01",
        "53300",  # too many connections
        "53100",  # disk full
        "58030",  # I/O error
    ],
)
def test_a_store_that_takes_no_writes_now_is_down(sqlstate: str) -> None:
    assert verdict(sqlstate) == "down"


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "40003", "55P03", "55006", "57014"])
def test_a_transaction_that_lost_a_race_or_waited_too_long_is_busy(sqlstate: str) -> None:
    assert verdict(sqlstate) == "busy"


@pytest.mark.parametrize(
    "sqlstate",
    [
        "23505",  # unique violation
        "23503",  # foreign key violation
        "22P02",  # invalid text representation
        "22021",  # bad encoding
        "42P01",  # undefined table (the schema is not migrated)
        "54001",  # statement too complex: the same every time
        "XX000",
    ],
)
def test_anything_else_the_server_says_is_a_refusal(sqlstate: str) -> None:
    assert verdict(sqlstate) == "refused"


def test_an_error_of_the_client_is_down_only_when_it_is_about_the_connection() -> None:
    assert verdict(None, client_connection_error=True) == "down"
    assert verdict(None, client_connection_error=False) == "refused"  # e.g. a NUL in a text
