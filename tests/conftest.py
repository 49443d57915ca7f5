"""Fixtures: real RabbitMQ and PostgreSQL, a fake Jira over HTTP, worker processes.

Each test gets its own database and its own queue names, and removes them afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from demo.fake_jira import FakeJira
from lab.harness import Broker, WorkerProcess, worker_env
from lab.servers import Servers, servers
from schemas.topology import Topology
from tests.webhook_support import ReceiverProcess, receiver_env
from worker.store.migrate import migrate


@pytest.fixture(scope="session")
def infra() -> Iterator[Servers]:
    with servers() as found:
        yield found


@pytest.fixture
def database(infra: Servers) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    url = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    migrate(url)
    yield url
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def topology() -> Topology:
    # Short delays keep retry tests quick; the real defaults are seconds to minutes.
    return Topology(prefix=f"assetsync-test-{uuid.uuid4().hex[:10]}", retry_delays=(0.2, 0.5))


@pytest.fixture
def broker(infra: Servers, topology: Topology) -> Iterator[Broker]:
    found = Broker(url=infra.amqp_url, topology=topology)
    yield found
    found.delete_all()


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(flavor="datacenter") as fake:
        yield fake


@pytest.fixture
def cloud_jira() -> Iterator[FakeJira]:
    with FakeJira(flavor="cloud") as fake:
        yield fake


@pytest.fixture
def start_worker(
    infra: Servers, database: str, broker: Broker, jira: FakeJira, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``python -m worker`` processes; each is stopped when the test ends.

    Call with ``jira_url=`` to point at another fake, ``env={...}`` to add settings,
    ``wait=False`` not to wait until it consumes, ``module=`` to run a launcher of the
    worker (``tests.skewed_clock``).
    """
    started: list[WorkerProcess] = []

    def start(
        *,
        jira_url: str | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        args: tuple[str, ...] = (),
        module: str = "worker",
    ) -> WorkerProcess:
        process = WorkerProcess(
            env=worker_env(
                amqp_url=infra.amqp_url,
                database_url=database,
                topology=broker.topology,
                jira_url=jira_url or jira.url,
                extra=env,
            ),
            log_path=tmp_path / f"worker-{len(started)}.log",
            args=args,
            module=module,
        )
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def receiver(broker: Broker, tmp_path: Path) -> Iterator[ReceiverProcess]:
    """The webhook receiver (``python -m producers.jira_webhooks``) on this test's broker."""
    process = ReceiverProcess(
        env=receiver_env(amqp_url=broker.url, topology=broker.topology),
        log_path=tmp_path / "receiver.log",
    )
    yield process.start()
    process.stop()
