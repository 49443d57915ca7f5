"""The Health page asks other components' ``/healthz``; what they answer is bounded."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from console import health


def _serve(body: bytes, *, pause: float = 0.0) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for i in range(0, len(body), 1024):
                self.wfile.write(body[i : i + 1024])
                self.wfile.flush()
                time.sleep(pause)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def source() -> Iterator[str]:
    yield from _serve(json.dumps({"status": "ok", "position": {"offset": 7}}).encode())


@pytest.fixture
def huge() -> Iterator[str]:
    yield from _serve(b'{"status": "' + b"x" * (health.MAX_STATUS_BYTES + 10) + b'"}')


@pytest.fixture
def dribbling() -> Iterator[str]:
    yield from _serve(b'{"status": "' + b"x" * 8192 + b'"}', pause=0.3)


def test_a_source_that_answers_is_shown(source):
    found = health.security_log_source(source)
    assert found["status"] == "ok" and found["position"] == {"offset": 7}


def test_an_answer_too_large_is_not_read(huge):
    found = health.security_log_source(huge)
    assert "does not answer" in str(found["error"]) and "over 65536 bytes" in str(found["error"])
    assert "over 65536 bytes" in str(health.webhook_receiver(huge)["error"])


def test_an_answer_that_dribbles_in_is_given_up_after_the_timeout(dribbling):
    started = time.monotonic()
    found = health.security_log_source(dribbling, timeout=1.0)
    assert "no whole answer within 1 s" in str(found["error"])
    assert time.monotonic() - started < 2.5


@pytest.fixture
def nested() -> Iterator[str]:
    yield from _serve(b"[" * 30_000 + b"]" * 30_000)  # within the size bound


def test_an_answer_nested_too_deeply_is_an_error_not_a_crash(nested):
    assert "nested too deeply" in str(health.security_log_source(nested)["error"])
    assert "nested too deeply" in str(health.webhook_receiver(nested)["error"])
