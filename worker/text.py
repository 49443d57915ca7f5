"""Untrusted text made safe to show: in a log line, a dead-letter reason, a terminal.

Message bodies and headers, Jira's answers, webhook requests and log files may hold
newlines (a forged log line or table row), terminal escape sequences (a retitled or
cleared screen) and other invisible characters. ``printable`` escapes them all, so
what reaches a person is exactly one line that shows what was there.
"""

from __future__ import annotations


def printable(text: object, limit: int | None = None) -> str:
    """``text`` with every control and other non-printing character escaped (``\\n``,
    ``\\x1b``, ``\\u200b``...), cut to ``limit`` characters (ending in "…") if given."""
    value = text if isinstance(text, str) else str(text)
    end = len(value) if limit is None else limit + 1
    shown = "".join(c if c.isprintable() else _escape(c) for c in value[:end])
    if limit is None or (len(value) <= limit and len(shown) <= limit):
        return shown
    return shown[: max(0, limit - 1)] + "…"


def quoted(text: object, limit: int = 200) -> str:
    """``text`` between quotes, escaped and cut: for a name or value from outside inside a
    sentence of ours (``user 'jdoe'``), where it cannot pass for the sentence."""
    return "'" + printable(text, limit).replace("'", "\\'") + "'"


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
