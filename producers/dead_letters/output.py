"""How ``python -m producers.dead_letters`` shows dead letters: a table, a detail view,
one-line summaries, and the JSON forms of each. Every string from a message arrives
here already bounded and printable (``producers.dead_letters.letters``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from producers.dead_letters.letters import Letter
from producers.durations import short_duration
from worker.text import printable

REASON_COLUMN = 60


def letter_json(letter: Letter, now: datetime) -> dict[str, Any]:
    age = letter.age_seconds(now)
    return {
        "id": letter.id,
        "type": letter.type,
        "reason": letter.reason,
        "identity": letter.identity,
        "published_at": letter.published_at.isoformat() if letter.published_at else None,
        "age_s": None if age is None else round(age, 3),
        "body_bytes": letter.body_bytes,
        "delivery_count": letter.delivery_count,
        "replayable": letter.replayable,
    }


def action_json(
    action: str,
    dry_run: bool,
    examined: int,
    done: list[Letter],
    skipped: list[Letter],
    given_back: int,
) -> dict[str, Any]:
    return {
        "action": action,
        "dry_run": dry_run,
        "examined": examined,
        "done": [d.id for d in done],
        "not_replayable": [{"id": s.id, "reason": s.reason} for s in skipped],
        "given_back": given_back,
    }


def listing_text(
    queue_name: str,
    ready: int,
    examined: list[Letter],
    shown: list[Letter],
    limit: int,
    now: datetime,
) -> str:
    if not examined:
        return f"{queue_name} is empty"
    head = f"{queue_name}: {len(shown)} of {len(examined)} dead letters"
    if ready > len(examined) and len(examined) >= limit:
        head += f" (read the first {limit} of {ready}; --limit to read more)"
    rows = [("ID", "TYPE", "AGE", "REASON", "IDENTITY")]
    rows += [
        (
            d.id,
            d.type,
            short_duration(d.age_seconds(now)),
            printable(d.reason, REASON_COLUMN),
            d.identity,
        )
        for d in shown
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]  # the last is not padded
    lines = ["  ".join([*map(str.ljust, row[:4], widths), row[4]]) for row in rows]
    return "\n".join([head, *(line.rstrip() for line in lines)])


def detail_text(
    letter: Letter,
    now: datetime,
    properties: dict[str, str],
    headers: dict[str, str],
    body: str,
    cut: bool,
    max_bytes: int,
) -> str:
    published = "unknown"
    if letter.published_at is not None:
        stamp = letter.published_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        published = f"{stamp} ({short_duration(letter.age_seconds(now))} ago)"
    lines = [
        f"id:         {letter.id}",
        f"type:       {letter.type}{'' if letter.replayable else ' (no queue takes it)'}",
        f"reason:     {letter.reason}",
        f"published:  {published}",
        f"identity:   {letter.identity or '-'}",
        f"size:       {letter.body_bytes} bytes",
        "properties:",
        *(f"  {k}: {v}" for k, v in properties.items()),
        "headers:",
        *(f"  {k}: {v}" for k, v in headers.items()),
        "body:",
        *(f"  {line}" for line in body.splitlines()),
    ]
    if cut:
        lines.append(f"  (the first {max_bytes} of {letter.body_bytes} bytes; --bytes for more)")
    return "\n".join(lines)


def summary_line(
    action: str,
    verb: str,
    done: list[Letter],
    skipped: list[Letter],
    given_back: int,
    queue_name: str,
) -> str:
    line = f"{verb} {len(done)} dead letter(s)"
    if action == "replay":
        line += " to their queues"
    if skipped:
        line += f"; {len(skipped)} selected one(s) cannot be replayed"
    return f"{line}; {given_back} given back to {queue_name}"
