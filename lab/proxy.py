"""A TCP proxy for fault tests: forwards, cuts, or goes silent on purpose.

A worker pointed at the proxy instead of a server sees the faults a network makes:
``cut()`` closes every connection at once (as a dropped route with a reset would);
``refuse()`` also stops accepting new ones until ``restore()`` (a server that is down);
``go_silent()`` keeps every open connection open but forwards nothing more, in either
direction (as a stuck middlebox or a black-holed route would), while new connections
are forwarded normally, so that a client that notices and reconnects gets through.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType


class Proxy:
    """Forward ``127.0.0.1:<port>`` to ``target``.

    :param target: ``(host, port)`` of the real server.
    :param close_upstream_when_silent: when going silent, close the server side of the
        silenced connections: what the server's own TCP keepalives would do after a
        while on a real black-holed route (the proxy's kernel would answer them).
    :param port: where to listen (0: any free port).
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        close_upstream_when_silent: bool = True,
        port: int = 0,
    ):
        self.target = target
        self.close_upstream_when_silent = close_upstream_when_silent
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._silenced: list[_Pair] = []
        self._closed = False
        self.accepted = 0
        self.port = port
        self.restore()

    def restore(self) -> None:
        """Listen (again, on the same port) and forward new connections."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        listener = self._listener
        threading.Thread(
            target=self._accept, args=(listener,), name="proxy-accept", daemon=True
        ).start()

    def refuse(self) -> None:
        """Close every connection and refuse new ones, as a server that is down would."""
        self._stop_listening()
        self.cut()

    def url(self, scheme_url: str) -> str:
        """``scheme_url`` with its host and port replaced by the proxy's."""
        host, port = self.target
        return scheme_url.replace(f"{host}:{port}", f"127.0.0.1:{self.port}")

    def cut(self) -> int:
        """Close every connection now; return how many there were."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()
        return len(pairs)

    def go_silent(self) -> int:
        """Stop forwarding on every open connection, without closing it towards the
        client; return how many were silenced."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.silence(close_upstream=self.close_upstream_when_silent)
        self._silenced.extend(pairs)
        return len(pairs)

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.done.is_set())

    def close(self) -> None:
        self._stop_listening()
        self.cut()
        for pair in self._silenced:
            pair.close()

    def _stop_listening(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            # Wakes the thread blocked in accept(); close() alone leaves it listening.
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.accepted += 1
            threading.Thread(target=pair.pump, name="proxy-pump", daemon=True).start()


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.done = threading.Event()
        self.silent = threading.Event()
        # Silenced sockets are kept here so that they stay open (and unread).
        self._held: list[socket.socket] = []

    def pump(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.client, selectors.EVENT_READ, self.upstream)
        selector.register(self.upstream, selectors.EVENT_READ, self.client)
        try:
            while not self.done.is_set() and not self.silent.is_set():
                for key, _ in selector.select(timeout=0.1):
                    if self.silent.is_set():
                        break
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        self.close()
                        return
                    key.data.sendall(data)
        except OSError:
            self.close()
        finally:
            selector.close()

    def silence(self, *, close_upstream: bool) -> None:
        self.silent.set()
        self._held.append(self.client)
        if close_upstream:
            with contextlib.suppress(OSError):
                self.upstream.close()
        else:
            self._held.append(self.upstream)

    def close(self) -> None:
        self.done.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()
