"""The buffered frame reader gives what py-amqp's own gives, and keeps its behaviour."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from amqp.exceptions import UnexpectedFrame
from amqp.transport import TCPTransport

from worker.frame_reader import READ_CHUNK, read_frame


def _frame(kind: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", kind, 5, len(payload)) + payload + end


@pytest.fixture
def pair() -> Iterator[tuple[TCPTransport, socket.socket]]:
    ours, theirs = socket.socketpair()
    transport = TCPTransport.__new__(TCPTransport)  # as connected: its socket and buffer
    transport.sock, transport._quick_recv = ours, ours.recv
    transport._read_buffer, transport.connected = b"", True
    transport.raise_on_initial_eintr = True
    ours.settimeout(0.2)
    yield transport, theirs
    ours.close()
    theirs.close()


def test_frames_of_any_size_come_out_whole_and_in_order(
    pair: tuple[TCPTransport, socket.socket],
) -> None:
    transport, peer = pair
    payloads = [b"", b"x", bytes(range(256)) * 3, b"y" * (READ_CHUNK + 17), b"z" * 500]
    peer.sendall(b"".join(_frame(1 + i % 3, p) for i, p in enumerate(payloads)))
    assert [read_frame(transport) for _ in payloads] == [
        (1 + i % 3, 5, p) for i, p in enumerate(payloads)
    ]


def test_a_timeout_mid_frame_keeps_what_was_read_for_the_next_call(
    pair: tuple[TCPTransport, socket.socket],
) -> None:
    transport, peer = pair
    whole = _frame(3, b"body" * 100)
    peer.sendall(whole[:5])
    with pytest.raises(TimeoutError):
        read_frame(transport)
    peer.sendall(whole[5:200])
    with pytest.raises(TimeoutError):
        read_frame(transport)
    peer.sendall(whole[200:])
    assert read_frame(transport) == (3, 5, b"body" * 100)
    assert transport.connected


def test_a_frame_without_its_end_octet_is_refused(
    pair: tuple[TCPTransport, socket.socket],
) -> None:
    transport, peer = pair
    peer.sendall(_frame(1, b"abc", end=b"\x00"))
    with pytest.raises(UnexpectedFrame):
        read_frame(transport)


def test_a_closed_connection_disconnects_the_transport(
    pair: tuple[TCPTransport, socket.socket],
) -> None:
    transport, peer = pair
    peer.sendall(_frame(1, b"abc")[:4])
    peer.close()
    with pytest.raises(OSError, match="closed"):
        read_frame(transport)
    assert not transport.connected
