"""What a database error says about the message that met it, by SQLSTATE (never by
psycopg's exception class: a read-only transaction, 25006, is an ``InternalError`` there,
a deadlock an ``OperationalError`` like a lost connection).

* ``down``: the store takes no writes now, whatever the message: a failover or
  switchover (25006 read-only: a standby, a demoted primary, a pooler or virtual IP
  still pointing at the old one), a server shutting down, crashing or starting up
  (57P01, 57P02, 57P03), a connection ended under us (25P03, 57P05, class 08), the server
  out of connections, disk or memory (class 53), failing I/O (class 58), the database
  gone (57P04). Not the message's fault: the loop waits for the store instead of
  spending the message's retries.
* ``busy``: this transaction lost a race or waited too long (40001 serialization
  failure, 40P01 deadlock, class 40; 55P03 lock not available; 55006 object in use;
  57014 statement cancelled or timed out; 25P04 transaction timeout; 72000 snapshot too
  old). Retried with backoff, counted against the message's retries: a message that
  keeps causing it is dead-lettered in the end.
* ``refused``: anything else with a SQLSTATE (a constraint, a bad value, a statement
  too complex): the same message fails the same way every time.

An error with no SQLSTATE was raised by the client: a connection that could not be
made, broke, or stayed silent past the deadline is ``down`` too (``client_verdict``); a
value the client cannot send (a NUL in a text) is ``refused``.
"""

from __future__ import annotations

from typing import Literal

Verdict = Literal["down", "busy", "refused"]

DOWN_CLASSES = frozenset({"08", "53", "58"})
DOWN_STATES = frozenset({"25006", "25P03", "57000", "57P01", "57P02", "57P03", "57P04", "57P05"})
BUSY_CLASSES = frozenset({"40"})
BUSY_STATES = frozenset({"55P03", "55006", "57014", "25P04", "72000"})


def verdict(sqlstate: str | None, *, client_connection_error: bool = False) -> Verdict:
    """What an error means for the message that met it: by its ``sqlstate``, or, for an
    error the client raised (no SQLSTATE), by whether it is about the connection
    (psycopg's ``OperationalError``: could not connect, broke, went silent)."""
    if not sqlstate:
        return "down" if client_connection_error else "refused"
    if sqlstate in DOWN_STATES or sqlstate[:2] in DOWN_CLASSES:
        return "down"
    if sqlstate in BUSY_STATES or sqlstate[:2] in BUSY_CLASSES:
        return "busy"
    return "refused"
