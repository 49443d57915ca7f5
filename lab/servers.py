"""Where the tests find RabbitMQ and PostgreSQL.

With a Docker engine, testcontainers starts both. Without one, the tests use the
servers named by ``ASSETSYNC_TEST_AMQP_URL`` / ``ASSETSYNC_TEST_DATABASE_URL``, which
default to the local ones. Either way the servers are real.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOCAL_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Servers:
    amqp_url: str
    database_url: str  # a maintenance database; each test makes its own database


def docker_available() -> bool:
    """Is a Docker engine listening? (Asked over its socket, without the docker client,
    which leaves sockets open when no engine answers.)"""
    if os.environ.get("ASSETSYNC_TEST_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine was named on purpose
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(host[len("unix://") :])
        except OSError:
            return False
    return True


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    named = os.environ.get("ASSETSYNC_TEST_AMQP_URL") or os.environ.get(
        "ASSETSYNC_TEST_DATABASE_URL"
    )
    if named or not docker_available():
        yield Servers(
            amqp_url=os.environ.get("ASSETSYNC_TEST_AMQP_URL", LOCAL_AMQP),
            database_url=os.environ.get("ASSETSYNC_TEST_DATABASE_URL", LOCAL_DATABASE),
        )
        return
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with (
        RabbitMqContainer("rabbitmq:4-management") as rabbit,
        PostgresContainer("postgres:17") as pg,
    ):
        host = rabbit.get_container_host_ip()
        port = rabbit.get_exposed_port(5672)
        yield Servers(
            amqp_url=f"amqp://guest:guest@{host}:{port}/%2F",
            database_url=pg.get_connection_url(driver=None),
        )
