"""The workers' signing key, kept in the asset store (``worker_keys``, made by migration
0004) for deployments that set no ``ASSETSYNC_SIGNING_KEY``."""

from __future__ import annotations

from typing import Any

import psycopg

from worker.errors import ConfigError


def load_key(conn: psycopg.Connection[Any]) -> bytes:
    """The key the migration made (``worker_keys``)."""
    row = conn.execute("SELECT key FROM worker_keys WHERE name = 'user-sync'").fetchone()
    if row is None:
        raise ConfigError("the asset store has no signing key: run `python -m worker migrate`")
    return bytes(row[0])
