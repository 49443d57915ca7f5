"""The workers' signing keys (``assetsync_private.signing_keys``, migration 0015): read
as a key ring, and rotated. Only the workers' role may read them (docs/security.md).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import psycopg

from worker.errors import ConfigError
from worker.signing import KeyRing, SigningKey

TABLE = "assetsync_private.signing_keys"


def load_ring(conn: psycopg.Connection[Any]) -> KeyRing:
    """The key in use and the retired ones (accepted until they retire, then named in
    the refusal; the next rotation deletes them). How long each is accepted is computed
    by PostgreSQL's clock, so replicas whose clocks differ agree on it."""
    read_at = time.monotonic()
    rows = conn.execute(
        f"SELECT id, key, EXTRACT(EPOCH FROM retires_at - now())::float8 FROM {TABLE}"
        " ORDER BY id DESC"
    ).fetchall()
    current = [SigningKey(id, bytes(key)) for id, key, left in rows if left is None]
    if not current:
        raise ConfigError("the asset store has no signing key: run `python -m worker migrate`")
    previous = tuple(SigningKey(id, bytes(key), left) for id, key, left in rows if left is not None)
    return KeyRing(current[0], previous, read_at)


def rotate(conn: psycopg.Connection[Any], *, window: float) -> tuple[int, int]:
    """Make a new random key the one workers sign with; the one in use until now is
    accepted for ``window`` more seconds. Keys retired longer ago are deleted, and so is
    0.2.0's copy of its key (``worker_keys``, read only by 0.2.0 replicas). Returns
    (new key id, previous key id). One transaction; concurrent rotations take turns."""
    with conn.transaction():
        conn.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
        row = conn.execute(f"SELECT id FROM {TABLE} WHERE retires_at IS NULL").fetchone()
        if row is None:
            raise ConfigError("the asset store has no signing key: run `python -m worker migrate`")
        previous = int(row[0])
        conn.execute(
            f"UPDATE {TABLE} SET retires_at = now() + make_interval(secs => %s) WHERE id = %s",
            [window, previous],
        )
        inserted = conn.execute(
            f"INSERT INTO {TABLE} (id, key) SELECT max(id) + 1, %s FROM {TABLE} RETURNING id",
            [secrets.token_bytes(32)],
        ).fetchone()
        assert inserted is not None
        new = int(inserted[0])
        conn.execute(f"DELETE FROM {TABLE} WHERE retires_at <= now()")
        conn.execute("DELETE FROM worker_keys")
    return new, previous
