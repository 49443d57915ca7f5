"""Where PostgreSQL spends a timed phase, statement by statement (``--statements N``).

Needs ``pg_stat_statements`` preloaded in the server the bench uses (a server of your
own: ``shared_preload_libraries`` takes a restart; never on a shared one). Before a
phase its counters are reset; after it the top N statements by total execution time
are read, with calls, rows, buffers hit and WAL records per call. With
``pg_stat_statements.track = all`` the foreign-key checks PostgreSQL runs inside an
``INSERT`` show up as statements of their own (``SELECT 1 FROM ONLY ... FOR KEY
SHARE``); their time is also inside the ``INSERT``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

TOP = (
    "SELECT calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, wal_records,"
    " query FROM pg_stat_statements"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " ORDER BY total_exec_time DESC LIMIT %s"
)


@dataclass(frozen=True)
class Statements:
    """Resets and reads ``pg_stat_statements`` for one database; ``top`` 0 is off."""

    database_url: str
    top: int

    def reset(self) -> None:
        if self.top:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")

    def read(self) -> list[dict[str, Any]]:
        if not self.top:
            return []
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(TOP, [self.top]).fetchall()
        return [
            {
                "calls": calls,
                "total_ms": round(total, 1),
                "rows": n,
                "buffers_per_call": round(buffers / calls, 1),
                "wal_per_call": round(wal / calls, 1),
                "query": re.sub(r"\s+", " ", query)[:140],
            }
            for calls, total, n, buffers, wal, query in rows
        ]


def format_statements(phase: str, rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [f"  statements {phase} (calls, total ms, rows, buffers/call, WAL records/call)"]
    lines += [
        f"    {r['calls']:>7} {r['total_ms']:>8.0f} {r['rows']:>8} {r['buffers_per_call']:>7.1f}"
        f" {r['wal_per_call']:>6.1f}  {r['query']}"
        for r in rows
    ]
    return lines
