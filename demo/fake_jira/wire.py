"""The fake's HTTP plumbing: the threaded server and its request handler, query strings
as Jira reads them (a bad value is Jira's 400), routes, and injected faults."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from demo.fake_jira.render import HttpError

if TYPE_CHECKING:
    from demo.fake_jira.server import FakeJira

log = logging.getLogger("demo.fake_jira")
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


@dataclass(slots=True)
class Fault:
    remaining: int
    status: int
    retry_after: int | None
    path_contains: str


@dataclass(frozen=True, slots=True)
class Route:
    handler: Callable[[Query, str], Any]
    needs_auth: bool = True


class Query:
    """Typed access to a query string; bad values are Jira's 400."""

    def __init__(self, raw: str) -> None:
        self._params = parse_qs(raw, keep_blank_values=True)

    def text(self, name: str) -> str | None:
        values = self._params.get(name)
        return values[0] if values else None

    def integer(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, f"The '{name}' parameter must be a number") from None
        if value < 0:
            raise HttpError(400, f"The '{name}' parameter must not be negative")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        if raw.lower() not in ("true", "false"):
            raise HttpError(400, f"The '{name}' parameter must be true or false")
        return raw.lower() == "true"

    def expands(self, what: str) -> bool:
        return what in (self.text("expand") or "").split(",")


# -- the fake ---------------------------------------------------------------------------------


def fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit exceeded."
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


# -- HTTP plumbing ----------------------------------------------------------------------------


class Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the test process alive

    def __init__(self, address: tuple[str, int], fake: FakeJira) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up mid-response are normal in tests: no stderr noise.
        log.debug("connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Drop keep-alive connections so a stopped fake really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive: a 100-page scan should not reconnect 100 times
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "FakeJira/1.0"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        request_body = self._read_body()
        try:
            status, body, headers = self.server.fake.respond(
                self.command, self.path, self.headers.get("Authorization"), request_body
            )
        except Exception:
            log.exception("fake Jira failed on %s %s", self.command, self.path)
            status, body, headers = 500, {"errorMessages": ["Internal error"], "errors": {}}, {}
        payload = (
            b""
            if body is None
            else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        # Read even when unused: unread bodies would be parsed as the next request on a
        # keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""
