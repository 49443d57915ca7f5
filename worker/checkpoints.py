"""Where a directory scan resumes: immutable values, stored as JSON.

A checkpoint describes the position right after one page of a scan and nothing later:
a frozen dataclass of plain values (tuples, strings, numbers), made fresh for each page
and never changed afterwards, so a page's checkpoint can be saved after later pages
have been read. ``encode_checkpoint``/``decode_checkpoint`` turn it into the JSON of
``sync_runs.checkpoint`` and back; an unreadable one means "start over".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupPosition:
    """The next page of ``group/member``: group index in the filter, and offset."""

    group: int
    start_at: int


@dataclass(frozen=True)
class ListPosition:
    """The DC ``/user/list`` cursor of the next page."""

    cursor: str


@dataclass(frozen=True)
class CloudPosition:
    """The next Cloud page's offset, and the account ids of the previous page when it
    came back short: the next page may repeat some of them."""

    start_at: int
    previous: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchPosition:
    """Where a partitioned search stands, between two parts.

    :param pending: parts still to query, the next one last (depth first).
    :param alphabet: the characters capped parts are split by, in the order learnt.
    :param splits: each capped part, with how many characters of ``alphabet`` its
        children cover so far.
    :param ceiling: the most matches one query has returned so far (the cap is at least
        this); 0 before the first answer.
    :param widest: the longest single page Jira has returned so far.
    :param cap: the cap, once an answer proved it (a query returned this many while
        more users matched it); None while unproven.
    """

    pending: tuple[str, ...]
    alphabet: str
    splits: tuple[tuple[str, int], ...]
    ceiling: int = 0
    widest: int = 0
    cap: int | None = None


Checkpoint = GroupPosition | ListPosition | CloudPosition | SearchPosition


def encode_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint as JSON-ready data (stored in ``sync_runs.checkpoint``)."""
    match checkpoint:
        case GroupPosition(group, start_at):
            return {"mode": "group", "group": group, "start_at": start_at}
        case ListPosition(cursor):
            return {"mode": "list", "cursor": cursor}
        case CloudPosition(start_at, previous):
            return {"mode": "cloud", "start_at": start_at, "previous": list(previous)}
        case SearchPosition(pending, alphabet, splits, ceiling, widest, cap):
            return {
                "mode": "search",
                "version": 3,
                "pending": list(pending),
                "alphabet": alphabet,
                "splits": [[part, covered] for part, covered in splits],
                "ceiling": ceiling,
                "widest": widest,
                "cap": cap,
            }
    raise TypeError(f"not a checkpoint: {checkpoint!r}")


def decode_checkpoint(data: Any) -> Checkpoint | None:
    """A stored checkpoint, or None when there is none or it cannot be read (then the
    scan starts over: publishing some users twice is harmless, skipping them is not).

    Reads the formats of earlier versions too where they still mean the same thing.
    """
    if not isinstance(data, dict):
        return None
    mode = data.get("mode")
    try:
        if mode == "group" or (mode is None and "group" in data):
            return GroupPosition(_count(data["group"]), _count(data["start_at"]))
        if mode == "list":
            return ListPosition(_text(data["cursor"]))
        if mode == "cloud" or (mode is None and "start_at" in data):
            previous = tuple(_text(p) for p in data.get("previous", []))
            return CloudPosition(_count(data["start_at"]), previous)
        if mode == "search" and data.get("version") in (2, 3):
            # Version 2 knew nothing of the cap: it is learnt again from the next answers.
            cap = data.get("cap")
            return SearchPosition(
                pending=tuple(_text(p) for p in data["pending"]),
                alphabet=_text(data["alphabet"]),
                splits=tuple((_text(p), _count(n)) for p, n in data["splits"]),
                ceiling=_count(data.get("ceiling", 0)),
                widest=_count(data.get("widest", 0)),
                cap=None if cap is None else _count(cap),
            )
    except (KeyError, TypeError, ValueError):
        pass
    log.warning("ignoring a checkpoint this version cannot resume from: %.200r", data)
    return None


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value
