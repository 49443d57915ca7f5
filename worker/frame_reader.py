"""py-amqp's reader of frames from a plain TCP socket, buffered.

py-amqp reads a frame in three ``recv`` calls of exactly what it needs next (the 7-octet
frame header, the payload, the end octet), and a delivery is three frames: nine system
calls and nine copies of what is left in its buffer for every message the workers
consume. This reader asks the socket for up to ``READ_CHUNK`` bytes whenever it lacks
some, so a ``recv`` brings in many frames, and cuts frames off the front of a
``bytearray`` (which CPython does without moving what is left).

What stays py-amqp's: a timeout leaves a half-read frame in the buffer for the next
call, a closed or failed socket marks the transport disconnected, a frame that does not
end in 0xCE raises ``UnexpectedFrame``. Only plain TCP: a TLS socket gives at most 16 KiB
a read and keeps its own buffer (py-amqp's ``SSLTransport`` is left as it is).
"""

from __future__ import annotations

import errno
import struct
import time
from typing import Any

from amqp.exceptions import UnexpectedFrame
from amqp.transport import TCPTransport

READ_CHUNK = 65_536
# Frames cut from the buffer between two moments the thread lets go of the GIL. Each
# recv of py-amqp's let the replica's other threads (the login loop first) run; frames
# read without one would hold it up to the interpreter's switch interval (5 ms), and a
# login waiting to run then waited twice as long at the median. Every fourth delivery
# keeps those waits as short as before.
YIELD_EVERY = 12
_HEADER = struct.Struct(">BHI")  # frame type, channel, payload size
_RETRY = (errno.EAGAIN, errno.EINTR)
# Errors after which py-amqp keeps the transport connected (its own _UNAVAIL).
_UNAVAIL = frozenset({errno.EAGAIN, errno.EINTR, errno.ENOENT, errno.EWOULDBLOCK})


def read_frame(transport: Any, unpack: Any = None) -> tuple[int, int, bytes]:
    """One frame: (type, channel, payload), as ``TCPTransport.read_frame`` returns it."""
    buf = transport._read_buffer
    if not isinstance(buf, bytearray):  # py-amqp's own bytes, left by the handshake
        buf = transport._read_buffer = bytearray(buf)
    try:
        while len(buf) < 7:
            _fill(transport, buf, initial=True)
        frame_type, channel, size = _HEADER.unpack_from(buf)
        end = 7 + size
        while len(buf) <= end:
            _fill(transport, buf, initial=False)
    except TimeoutError:
        raise  # what was read stays in the buffer
    except OSError as exc:
        if exc.errno not in _UNAVAIL:
            transport.connected = False
        raise
    payload, frame_end = bytes(buf[7:end]), buf[end]
    del buf[: end + 1]
    transport._frames_read = read = getattr(transport, "_frames_read", 0) + 1
    if read % YIELD_EVERY == 0:
        time.sleep(0)  # lets go of the GIL, see YIELD_EVERY
    if frame_end != 0xCE:
        raise UnexpectedFrame(f"Received frame_end {frame_end:#04x} while expecting 0xce")
    return frame_type, channel, payload


def _fill(transport: Any, buf: bytearray, *, initial: bool) -> None:
    while True:
        try:
            data = transport._quick_recv(READ_CHUNK)
        except OSError as exc:
            if exc.errno in _RETRY:
                if initial and transport.raise_on_initial_eintr:
                    raise TimeoutError() from None
                continue
            raise
        if not data:
            raise OSError("Server unexpectedly closed connection")
        buf += data
        return


def install_amqp() -> None:
    """Read plain TCP connections' frames with ``read_frame`` (idempotent)."""
    if getattr(TCPTransport.read_frame, "assetsync", False):
        return

    def buffered_read_frame(self: Any, unpack: Any = None) -> tuple[int, int, bytes]:
        return read_frame(self, unpack)

    buffered_read_frame.assetsync = True  # type: ignore[attr-defined]
    TCPTransport.read_frame = buffered_read_frame
