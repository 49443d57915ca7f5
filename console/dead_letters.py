"""The dead letters on the console: the dead-letter tool's queue and records
(``producers.dead_letters``), one letter at a time.

Reading never loses a message: each is taken without acknowledging it and given back
when the page has what it needs (which RabbitMQ counts as a delivery, as for the tool).
Replay publishes the copy the tool publishes and removes the original only once the
broker confirmed it; delete removes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from producers.dead_letters.letters import Letter, describe, replay_headers
from producers.dead_letters.queue import DeadQueue, DeadQueueError

MAX_LISTED = 200
ACTIONS = {"replay": "replayed", "delete": "deleted"}


class NotDone(Exception):
    """The letter was not replayed or deleted; the message says why, for the page."""


@dataclass(frozen=True)
class Listing:
    ready: int
    letters: list[Letter]


def listing(open_queue: Callable[[], DeadQueue], *, limit: int = MAX_LISTED) -> Listing:
    try:
        with open_queue() as queue:
            ready = queue.count()
            try:
                letters = [describe(t.envelope) for t in queue.take(limit)]
            finally:
                queue.release_all()
    except DeadQueueError as exc:
        raise NotDone(str(exc)) from None
    return Listing(ready=ready, letters=letters)


def act(open_queue: Callable[[], DeadQueue], letter_id: str, action: str) -> Letter:
    """Replay or delete the dead letter ``letter_id``; every other one is given back.

    :raises NotDone: it is not there (any more), cannot be replayed, or the broker failed.
    """
    if action not in ACTIONS:
        raise NotDone(f"unknown action {action!r}")
    try:
        with open_queue() as queue:
            queue.count()
            if action == "replay":
                queue.prepare_replay()
            try:
                for taken in queue.take(MAX_LISTED * 5):
                    letter = describe(taken.envelope)
                    if letter.id != letter_id:
                        continue
                    if action == "replay" and not letter.replayable:
                        raise NotDone(
                            f"{letter.id} cannot be replayed ({letter.reason}): delete it"
                        )
                    if action == "replay":
                        queue.republish(taken, replay_headers(taken.envelope, letter.reason))
                    queue.remove(taken)
                    return letter
            finally:
                queue.release_all()
    except DeadQueueError as exc:
        raise NotDone(f"{exc}; nothing was {ACTIONS[action]}") from None
    raise NotDone(f"no dead letter {letter_id} (replayed or deleted meanwhile?)")
