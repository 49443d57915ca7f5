"""What writing user assets costs PostgreSQL, without a broker, a worker or Jira.

``python -m bench.store_write [--users 20000] [--batch-size 200] [--database-url URL]``

In a fresh database of its own, ``Store.apply_plans`` (the upsert both logins and bulk
runs use) writes N new user assets (five values each, alphabetical folders) in batches
of ``--batch-size`` over one connection, then the same N again, unchanged. For each
pass it prints the CPU PostgreSQL spent per asset (the postmaster of the database's
cluster and its backends, ``bench.infra.Servers``) and this process's CPU per asset.

Why: on a shared, loaded machine a whole ``bench.bulk_sync`` run moves by more than a
change to the asset write is worth; this pass takes seconds, so runs of the old and the
new schema can be alternated (see bench/README.md). Process CPU, not wall time: other
load inflates it far less. Run it against a cluster of your own
(``scripts/bench-servers``): on a shared one, other users' backends count too.
"""

from __future__ import annotations

import argparse
import string
import time
from datetime import UTC, datetime

from bench.infra import (
    DEFAULT_ADMIN_DATABASE_URL,
    Servers,
    cpu_by_group,
    fresh_database,
    unique_suffix,
)
from worker.mapping import AssetPlan
from worker.settings import DEFAULT_FIELD_MAP, JIRA_FIELDS
from worker.store import Folders, Store, apply_plans, load_scheme
from worker.store.migrate import migrate


def plans(users: int) -> list[AssetPlan]:
    seen_at = datetime.now(UTC)
    return [
        AssetPlan(
            jira_id=f"JIRAUSER{10000 + i}",
            folder=("Employees", string.ascii_uppercase[i % 26]),
            values={
                "User": f"JIRAUSER{10000 + i}",
                "Username": f"user{i}",
                "Full name": f"Sample User {i}",
                "E-mail": f"sample.user{i}@example.com",
                "Active": i % 10 != 0,
            },
            seen_at=seen_at,
        )
        for i in range(users)
    ]


def measure(database_url: str, users: int, batch_size: int) -> dict[str, dict[str, float]]:
    """CPU milliseconds per asset, by pass ("create", "unchanged") and process group."""
    migrate(database_url)
    store = Store(url=database_url, max_size=2)  # one for the batches, one for folders
    store.open()
    try:
        folders = Folders(store)
        with store.transaction() as conn:
            scheme = load_scheme(
                conn,
                asset_type="Employee",
                user_field="User",
                field_map=DEFAULT_FIELD_MAP,
                kinds=JIRA_FIELDS,
            )
        # No broker here: port 1 listens nowhere, so no RabbitMQ is metered.
        servers = Servers.find(database_url, "amqp://-@127.0.0.1:1/")
        todo = plans(users)
        result = {}
        for phase in ("create", "unchanged"):
            before, client = cpu_by_group({}, servers)["postgres"], time.process_time()
            for start in range(0, users, batch_size):
                with store.transaction() as conn:
                    apply_plans(conn, scheme, todo[start : start + batch_size], folders=folders)
            used = cpu_by_group({}, servers)["postgres"] - before
            result[phase] = {
                "postgres_ms": round(1000 * used / users, 4),
                "client_ms": round(1000 * (time.process_time() - client) / users, 4),
            }
        return result
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_write", description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument(
        "--database-url", default=DEFAULT_ADMIN_DATABASE_URL, help="a maintenance database"
    )
    args = parser.parse_args(argv)
    with fresh_database(args.database_url, unique_suffix()) as url:
        result = measure(url, args.users, args.batch_size)
    for phase, cpu in result.items():
        print(
            f"{phase:>9}: PostgreSQL {cpu['postgres_ms']:.4f} ms/asset,"
            f" this process {cpu['client_ms']:.4f} ms/asset"
            f" ({args.users:,} assets, batches of {args.batch_size})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
