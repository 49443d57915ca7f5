"""``amqps://``: the broker's certificate is checked, and so is its name.

Seen: kombu got ``ssl=True`` and py-amqp then turned hostname checking off, so any
certificate from a trusted CA, for any host, was accepted. A TLS server of the test's
own presents a certificate for another name; the worker's connection must refuse it.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.broker import connect

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def certificate(tmp_path: Path, name: str, san: str) -> tuple[Path, Path]:
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[callable]:
    servers: list[socket.socket] = []

    def start(key: Path, cert: Path) -> int:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(8)  # the AMQP protocol header; then goodbye
                except (OSError, ssl.SSLError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for server in servers:
        server.close()


def test_a_trusted_certificate_for_another_host_is_refused(tls_server, tmp_path, monkeypatch):
    key, cert = certificate(tmp_path, "other.example", "DNS:other.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the CA is trusted; the name is wrong
    port = tls_server(key, cert)
    conn = connect(f"amqps://guest:guest@127.0.0.1:{port}/%2F", heartbeat=0)
    with pytest.raises(Exception, match="certificate verify failed: IP address mismatch"):
        conn.ensure_connection(max_retries=1)
    conn.collect()


def test_a_trusted_certificate_for_the_host_gets_past_tls(tls_server, tmp_path, monkeypatch):
    key, cert = certificate(tmp_path, "broker", "IP:127.0.0.1")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    port = tls_server(key, cert)
    conn = connect(f"amqps://guest:guest@127.0.0.1:{port}/%2F", heartbeat=0)
    with pytest.raises(Exception) as failed:  # no broker behind it: AMQP fails, TLS did not
        conn.ensure_connection(max_retries=1)
    assert "certificate verify failed" not in str(failed.value)
    conn.collect()
