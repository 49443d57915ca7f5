"""``python -m producers.webhooks [register --url URL | unregister | status]``

Without a command: the webhook receiver. It takes Jira's admin webhooks for
``user_created``, ``user_updated`` and ``user_deleted`` on ``POST /webhooks/jira``
(``GET /healthz`` for probes) and publishes one ``user-changed`` message per event,
answering 2xx only once RabbitMQ confirmed it. ``register`` creates or updates the
webhook in Jira (found by name), ``unregister`` deletes it, ``status`` shows it.

Exit codes: 0 done, 1 failed (Jira or RabbitMQ failed or refused), 2 usage error, 78
settings or credentials that cannot work (the receiver does not start).
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from producers.publisher import Publisher
from producers.webhooks.app import WEBHOOK_PATH, Receiver
from producers.webhooks.guard import SlowClientGuard
from producers.webhooks.protocol import Limits, guarded_protocol
from producers.webhooks.publishing import Publishers
from producers.webhooks.registration import Registration, complete
from worker.cli import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    configure,
    fail,
    one_line,
    say,
)
from worker.errors import AssetSyncError, ConfigError
from worker.jira import JiraClient, Webhook
from worker.settings import Settings

PROG = "python -m producers.webhooks"
log = logging.getLogger("producers.webhooks")

BUDGET_TOO_SMALL = (
    "invalid setting ASSETSYNC_WEBHOOK_BODY_BUDGET: must be at least"
    " ASSETSYNC_WEBHOOK_MAX_BYTES (one body of the largest size must fit)"
)
NO_SECRET = (
    "ASSETSYNC_WEBHOOK_SECRET is not set: refusing unsigned webhooks"
    " (set ASSETSYNC_WEBHOOK_INSECURE=true only for a receiver on a private network)"
)


def main(argv: list[str] | None = None, *, prog: str = PROG) -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", metavar="[register|unregister|status]")
    reg = commands.add_parser("register", help="create or update the webhook in Jira")
    reg.add_argument("--url", required=True, help="the receiver's public URL")
    for name, text in (("unregister", "delete the webhook"), ("status", "show the webhook")):
        commands.add_parser(name, help=f"{text} in Jira")
    for sub in commands.choices.values():
        sub.error = parser.error  # type: ignore[method-assign]  # one line, exit 2
        sub.add_argument("--name", help="the webhook's name in Jira (ASSETSYNC_WEBHOOK_NAME)")
    args = parser.parse_args(argv)
    settings = configure(prog)
    if args.command is None:
        return serve(settings, prog=prog)
    name = args.name or settings.webhook_name
    if args.command == "register":
        return register(settings, name=name, url=args.url, prog=prog)
    if args.command == "unregister":
        return unregister(settings, name=name, prog=prog)
    return status(settings, name=name, prog=prog)


# -- the receiver ------------------------------------------------------------------------


def serve(settings: Settings, *, prog: str = PROG) -> int:
    import uvicorn  # only the receiver needs the ASGI server

    host, port = settings.webhook_address
    secret = (
        settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    )
    if secret is None and not settings.webhook_insecure:
        return fail(prog, NO_SECRET, EXIT_CONFIG)
    if settings.webhook_body_budget < settings.webhook_max_bytes:
        return fail(prog, BUDGET_TOO_SMALL, EXIT_CONFIG)
    try:
        sock = _listen(host, port, backlog=backlog(settings.webhook_max_connections))
    except OSError as exc:
        return fail(prog, f"cannot listen on {host}:{port} ({one_line(exc)})", EXIT_FAILED)
    url = settings.amqp_url.get_secret_value()
    publisher = Publishers(
        connect=lambda: Publisher(url=url, topology=settings.topology, connection_attempts=1)
    )
    receiver = Receiver(
        secret=secret,
        publisher=publisher,
        max_bytes=settings.webhook_max_bytes,
        confirm_timeout=settings.webhook_confirm_timeout,
    )
    cap = _connection_cap(settings.webhook_max_connections)
    guard: SlowClientGuard[object] = SlowClientGuard(
        max_connections=cap,
        body_budget=settings.webhook_body_budget,
    )
    limits = Limits(
        header_timeout=settings.webhook_header_timeout,
        body_timeout=settings.webhook_body_timeout,
        max_body=settings.webhook_max_bytes,
        count=receiver.counters.close,
    )
    config = uvicorn.Config(
        receiver.app(),
        # Bounds per connection and for all of them (protocol.py); not uvicorn's
        # limit_concurrency, which counts idle connections and answers 503 to all.
        http=guarded_protocol(guard, limits),
        log_config=None,  # our logging setup, one format for every line
        access_log=False,  # the receiver logs one line per delivery itself
        timeout_graceful_shutdown=15,
        server_header=False,
        backlog=backlog(cap),
    )
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if secret is None:
        log.warning(
            "ASSETSYNC_WEBHOOK_SECRET is not set and ASSETSYNC_WEBHOOK_INSECURE=true:"
            " accepting UNSIGNED webhooks; keep this receiver on a private network"
        )
    log.info(
        "listening on http://%s:%d%s (%s)",
        shown,
        bound_port,
        WEBHOOK_PATH,
        "signed deliveries only" if secret else "unsigned deliveries accepted",
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again
    # against the handler that was installed before it ran: a no-op one makes a
    # finished graceful shutdown exit 0, as the worker does.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])
    return EXIT_OK


def backlog(cap: int) -> int:
    """Connections the kernel queues until they are accepted, which asyncio also
    accepts in one go. A quarter of the cap: a burst of newcomers accepted at once must
    not push out a delivery that connected just before them and whose bytes are on their
    way; a queue much shorter would make Jira's connections wait for a SYN retry (1 s)
    under a flood."""
    return max(64, min(1024, cap // 4))


def _connection_cap(wanted: int) -> int:
    """``wanted``, or fewer if the process may not open that many files: past the limit
    accept() fails and nobody gets in, while the guard pushes slow clients out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted + 64:
        target = wanted + 64 if hard == resource.RLIM_INFINITY else min(wanted + 64, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    cap = wanted if soft == resource.RLIM_INFINITY else min(wanted, soft - 64)
    if cap < wanted:
        log.warning(
            "ASSETSYNC_WEBHOOK_MAX_CONNECTIONS=%d: only %d, the open-file limit is %d",
            wanted,
            cap,
            soft,
        )
    return max(cap, 16)


def _listen(host: str, port: int, *, backlog: int) -> socket.socket:
    """The listening socket, bound here so that port 0 can be logged as the real port.

    Made with an explicit IPPROTO_TCP: asyncio turns Nagle's algorithm off only on
    connections whose socket says TCP, and with it on, every answer (headers and body
    are two writes) waited ~40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)  # uvicorn listens again with the same number
    except OSError:
        sock.close()
        raise
    return sock


# -- registration in Jira ----------------------------------------------------------------


def register(settings: Settings, *, name: str, url: str, prog: str = PROG) -> int:
    target = _receiver_url(url)
    if target is None:
        return fail(prog, f"--url {url!r} is not an http(s) URL", EXIT_USAGE)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None and not settings.webhook_insecure:
        return fail(prog, NO_SECRET, EXIT_CONFIG)

    def write(webhooks: Registration) -> int:
        action, hook = webhooks.register(name=name, url=target, secret=secret)
        signed = "signed with ASSETSYNC_WEBHOOK_SECRET" if secret else "UNSIGNED"
        say(f"{action} webhook {_describe(hook)}, {signed}")
        return EXIT_OK

    return _in_jira(settings, write, prog)


def unregister(settings: Settings, *, name: str, prog: str = PROG) -> int:
    def delete(webhooks: Registration) -> int:
        deleted = webhooks.unregister(name)
        if not deleted:
            say(f"no webhook named {name!r} in Jira; nothing to delete")
        for hook in deleted:
            say(f"deleted webhook {_describe(hook)}")
        return EXIT_OK

    return _in_jira(settings, delete, prog)


def status(settings: Settings, *, name: str, prog: str = PROG) -> int:
    def show(webhooks: Registration) -> int:
        hook = webhooks.find(name)
        if hook is None:
            return fail(prog, f"no webhook named {name!r} in Jira (run `register --url URL`)")
        say(_describe(hook))
        if not complete(hook):
            return fail(prog, "the webhook is disabled or lacks user events: run `register` again")
        return EXIT_OK

    return _in_jira(settings, show, prog)


def _in_jira(settings: Settings, act: Callable[[Registration], int], prog: str) -> int:
    """``act`` on the webhooks in Jira; an error is one line: 78 when the settings or
    credentials cannot work, 1 when Jira failed or refused."""
    if settings.jira_token is None:
        return fail(
            prog, "set ASSETSYNC_JIRA_URL and ASSETSYNC_JIRA_TOKEN (and the username)", EXIT_CONFIG
        )
    try:
        with JiraClient.from_settings(settings) as jira:
            return act(Registration(jira=jira))
    except ConfigError as exc:
        return fail(prog, one_line(exc), EXIT_CONFIG)
    except AssetSyncError as exc:
        return fail(prog, one_line(exc))


def _receiver_url(url: str) -> str | None:
    """The delivery URL: a bare host gets the receiver's path."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path if parts.path not in ("", "/") else WEBHOOK_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _describe(hook: Webhook) -> str:
    state = "enabled" if hook.enabled else "DISABLED"
    events = ", ".join(hook.events) or "no events"
    return f"{hook.name!r} (id {hook.id}, {state}) -> {hook.url} for {events}"


if __name__ == "__main__":
    sys.exit(main())
