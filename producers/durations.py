"""Durations as people write and read them on a command line: ``20h``, ``1d12h``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> float:
    """Seconds in ``20h``, ``90m``, ``1d12h``, ``45s`` or a plain number of seconds.

    :raises ValueError: anything else, or not more than zero.
    """
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        value = float(cleaned)
    elif cleaned and not _PART.sub("", cleaned):
        value = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))
    else:
        raise ValueError(f"not a duration like 20h, 90m or 1d12h: {text!r}")
    if not value > 0:
        raise ValueError(f"must be longer than 0: {text!r}")
    return value


def short_duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
