"""The fan-out's bound on the user-sync queue (``worker.fan_out.wait_for_room``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from worker.fan_out import ROOM_PATIENCE, ROOM_POLL, wait_for_room


class _Queue:
    """A loop whose queue holds the next of ``depths`` each time it is asked, and whose
    sleeps move a clock of its own."""

    def __init__(self, depths: Iterator[int | None]) -> None:
        self.depths = depths
        self.now = 0.0
        self.asked = 0
        self.slept = 0.0

    def waiting(self, queue: str) -> int | None:
        assert queue == "work"
        self.asked += 1
        return next(self.depths)

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _wait(queue: _Queue, ahead: int) -> bool:
    return wait_for_room(queue, "work", ahead, run_id=uuid.uuid4(), clock=queue.clock)  # type: ignore[arg-type]


def test_a_queue_within_the_bound_costs_one_look_and_no_wait() -> None:
    queue = _Queue(iter([1000]))
    assert _wait(queue, 1000)
    assert (queue.asked, queue.slept) == (1, 0.0)


def test_the_scan_waits_while_the_workers_drain_the_queue_and_goes_on_bounded() -> None:
    queue = _Queue(iter([5000, 4000, 3000, 2000, 1500]))
    assert _wait(queue, 1500)
    assert queue.asked == 5
    assert queue.slept == 4 * ROOM_POLL


def test_a_queue_no_one_drains_ends_the_bound_after_the_patience() -> None:
    queue = _Queue(iter(lambda: 5000, None))  # always 5000
    assert not _wait(queue, 1000)
    assert ROOM_PATIENCE < queue.slept <= ROOM_PATIENCE + 2 * ROOM_POLL


def test_a_queue_that_drains_slowly_is_waited_for_past_the_patience() -> None:
    # One message taken every 10 s: slow, but someone consumes; the bound holds.
    depths = [5000 - i // 40 for i in range(1600)]  # 40 looks of 0.25 s a message
    queue = _Queue(iter([*depths, 900]))
    assert _wait(queue, 1000)
    assert queue.slept > ROOM_PATIENCE


def test_a_missing_queue_is_no_reason_to_wait() -> None:
    queue = _Queue(iter([None]))
    assert _wait(queue, 10)
    assert queue.slept == 0.0
