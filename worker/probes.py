"""Health endpoints and metrics over HTTP, on ``ASSETSYNC_METRICS_PORT``:

* ``/healthz`` (liveness): every consuming loop made progress, or waited normally (for
  a delivery, for a reconnect, for Jira), within ``stall_after`` seconds. A broker or
  database outage does not fail it: restarting every pod would not bring them back.
* ``/readyz`` (readiness): settings checked against the asset store, every loop
  connected to the broker, and the database answering now.
* ``/metrics``: Prometheus' text format (``worker.metrics``).

Each answers 200 or 503 with one line per check, in plain text.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    """What the loops report about themselves, for the probes.

    :param stall_after: seconds without a beat after which a loop counts as stuck.
    """

    def __init__(self, *, stall_after: float) -> None:
        self.stall_after = stall_after
        self._lock = threading.Lock()
        self._beats: dict[str, float] = {}
        self._connected: dict[str, bool] = {}
        self.checked = False  # settings checked against the asset store and Jira

    def beat(self, name: str) -> None:
        """``name`` made progress, or is waiting as it should."""
        with self._lock:
            self._beats[name] = time.monotonic()

    def connected(self, name: str, up: bool) -> None:
        with self._lock:
            self._connected[name] = up

    def forget(self, name: str) -> None:
        with self._lock:
            self._beats.pop(name, None)
            self._connected.pop(name, None)

    def live(self) -> tuple[bool, list[str]]:
        now = time.monotonic()
        with self._lock:
            beats = dict(self._beats)
        lines = [
            f"{name}: {'ok' if now - at <= self.stall_after else 'stuck'}"
            f" (last progress {now - at:.0f}s ago)"
            for name, at in sorted(beats.items())
        ]
        return all(now - at <= self.stall_after for at in beats.values()), lines

    def ready(self, database: Callable[[], bool]) -> tuple[bool, list[str]]:
        with self._lock:
            connected = dict(self._connected)
        checks = [("settings", self.checked)]
        checks += [(f"broker ({name})", up) for name, up in sorted(connected.items())]
        if not connected:
            checks.append(("broker", False))
        checks.append(("database", self.checked and database()))
        return all(ok for _, ok in checks), [
            f"{what}: {'ok' if ok else 'down'}" for what, ok in checks
        ]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("probe %s", format % args)


def serve(
    *,
    port: int,
    registry: CollectorRegistry,
    health: Health,
    database: Callable[[], bool],
    host: str = "0.0.0.0",
) -> Callable[[], None]:
    """Serve the probes and metrics in a thread; return what stops the server."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, lines = health.live()
        elif path == "/readyz":
            ok, lines = health.ready(database)
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /healthz, /readyz and /metrics are here\n"]
        body = ("\n".join(lines) + "\n").encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body]

    stop, bound = start_server(app, host=host, port=port, name="probes")
    log.info("probes and metrics on port %d: /healthz /readyz /metrics", bound)
    return stop


def start_server(
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
    *,
    host: str,
    port: int,
    name: str,
) -> tuple[Callable[[], None], int]:
    """Serve a WSGI ``app`` from a thread of its own (one thread per request): what stops
    it, and the port it listens on (port 0 picks a free one). For small status endpoints
    beside a process's real work (the replicas' probes, the security-log source's).

    :raises OSError: the address cannot be listened on.
    """
    server_class = _Server6 if ":" in host else _Server  # an IPv6 address: "::", "::1"
    server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop, server.server_port
