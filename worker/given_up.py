"""Why a per-user message of a bulk run was given up on, from its dead letter (pure).

A ``user-sync`` message that is dead-lettered, by a worker (header
``x-assetsync-error``) or by RabbitMQ itself (``x-death``: the delivery limit, a
rejection, an expiry), reaches the workers again as a copy (``schemas.topology``,
``given_up_queue``); its user is counted failed in its run with this reason, so that
the run ends and says why. RabbitMQ puts the newest death first in ``x-death``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.messages import UserSync
from schemas.topology import ERROR_HEADER
from worker.text import printable

BROKER_REASONS = {
    "delivery_limit": "delivered more times than the queue's delivery limit, never acked",
    "rejected": "rejected by a worker",
    "expired": "its time to live ran out",
    "maxlen": "the queue was full",
}


@dataclass(frozen=True)
class GivenUp:
    """A dead-lettered per-user message, and why it was given up on."""

    message: UserSync
    reason: str


def why_given_up(headers: Mapping[str, Any] | None, *, work_queue: str) -> str:
    """The reason a dead letter of ``work_queue`` carries, in one line."""
    headers = headers or {}
    deaths = headers.get("x-death")
    newest = deaths[0] if isinstance(deaths, list) and deaths else None
    worker_said = _text(headers.get(ERROR_HEADER))
    if isinstance(newest, Mapping) and _text(newest.get("queue")) == work_queue:
        reason = _text(newest.get("reason")) or "?"
        why = f"RabbitMQ dead-lettered its message ({reason}: {BROKER_REASONS.get(reason, '?')})"
        if reason == "rejected" and worker_said:
            why += f": {worker_said}"
        return printable(why, 1000)
    if worker_said:
        return printable(worker_said, 1000)
    return "dead-lettered, no reason given"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""
