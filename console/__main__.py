"""``python -m console``: the Synchronize users web console for Jira administrators.

Listens on ``ASSETSYNC_CONSOLE_BIND`` (127.0.0.1) and ``ASSETSYNC_CONSOLE_PORT`` (8080; 0
picks a free port, logged), reads the same ``ASSETSYNC_*`` settings as the workers (the
asset store, RabbitMQ, Jira and the sync settings the environment pins), answers
``GET /healthz``, and on SIGTERM answers the requests in hand and exits 0. Exit codes: 0
stopped cleanly, 1 a dependency stayed unreachable, 78 a configuration error.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from console import health
from console.app import create_app, templates
from console.pages import Console
from console.sessions import SessionCodec
from producers.dead_letters.queue import DeadQueue
from producers.publisher import Publisher
from schemas.messages import BulkSyncRequested
from worker.cli import EXIT_FAILED, Parser, configure, exit_code_of
from worker.errors import ConfigError
from worker.jira import JiraClient
from worker.replica import with_retries
from worker.settings import Settings
from worker.store import Store
from worker.store.sync_settings import settings_version

log = logging.getLogger("console")
PROG = "python -m console"


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[1])
    parser.add_argument("--env-file", type=Path, help="read ASSETSYNC_* settings from this file")
    args = parser.parse_args(argv)
    settings = configure(prog, env_file=args.env_file)
    return exit_code_of(lambda: serve(settings))


def serve(settings: Settings) -> int:
    import uvicorn  # only the console and the webhook receiver need the ASGI server

    if not settings.jira_url:
        raise ConfigError("ASSETSYNC_JIRA_URL is not set: which Jira do administrators sign in to?")
    store = Store(
        url=settings.database_url.get_secret_value(), max_size=4, deadline=settings.database_timeout
    )
    jira = JiraClient.from_settings(settings)
    try:
        with_retries("asset store", store.open, on_wait=lambda: None)
        with store.connection() as conn:
            settings_version(conn)  # the schema is there (else: run `python -m worker migrate`)
        flavor = with_retries("Jira", lambda: jira.flavor, on_wait=lambda: None)
        key = (
            settings.console_secret.get_secret_value().encode() if settings.console_secret else None
        )
        if key is None:
            log.warning(
                "ASSETSYNC_CONSOLE_SECRET is not set: sessions are signed with a random key"
                " and end when the console restarts (set it to share them between replicas)"
            )
        console = Console(
            settings=settings,
            store=store,
            jira=jira,
            publish=_publisher(settings),
            codec=SessionCodec(
                key=key or secrets.token_bytes(32), idle=settings.console_session_minutes * 60
            ),
            templates=templates(),
            dead_queue=lambda: DeadQueue(
                url=settings.amqp_url.get_secret_value(), topology=settings.topology
            ),
            queues=lambda: health.queues(settings.amqp_url.get_secret_value(), settings.topology),
        )
        host, port = settings.console_bind, settings.console_port
        secure = not _loopback(host)
        app = create_app(console, secure_cookies=secure)
        app.state.console = console
        try:
            sock = _listen(host, port)
        except OSError as exc:
            log.critical("cannot listen on %s:%d (%s)", host, port, exc)
            return EXIT_FAILED
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            limit_concurrency=200,
            timeout_graceful_shutdown=10,
            server_header=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)

        def stop(signum: int, frame: FrameType | None) -> None:
            server.should_exit = True

        # Before the URL is announced: a SIGTERM that comes before uvicorn installs its
        # own handlers still stops it (cleanly). uvicorn raises the signal again against
        # this handler once it has shut down: that must not kill the process either.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        log.info(
            "console on http://%s:%d (Jira %s at %s; session cookies %s)",
            shown,
            bound[1],
            flavor,
            settings.jira_url,
            "Secure: serve it over HTTPS" if secure else "not Secure: loopback only",
        )
        server.run(sockets=[sock])
        log.info("console stopped")
        return 0
    finally:
        jira.close()
        store.close()


def _publisher(settings: Settings) -> Callable[[BulkSyncRequested], None]:
    """Publish one request on a connection of its own (pika is not thread-safe, and an
    administrator starts a run now and then), returning once RabbitMQ confirmed it."""
    url, topology = settings.amqp_url.get_secret_value(), settings.topology

    def publish(message: BulkSyncRequested) -> None:
        with Publisher(url=url, topology=topology, connection_attempts=1) as publisher:
            publisher.publish(message)

    return publish


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that port 0 can be logged as the real one (and
    with an explicit IPPROTO_TCP, so that asyncio turns Nagle's algorithm off)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


if __name__ == "__main__":
    sys.exit(main())
