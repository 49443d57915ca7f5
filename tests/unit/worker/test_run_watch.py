from uuid import UUID

from worker.run_watch import IdleClocks, look_every
from worker.store.runs import OpenRun

A, B = UUID(int=1), UUID(int=2)


def open_run(run_id: UUID, done: int, *, locked: bool = False) -> OpenRun:
    return OpenRun(run_id, "processing", matched=10, done=done, locked=locked)


def test_a_run_that_does_not_move_stalls_once_the_bound_has_passed():
    clocks = IdleClocks(stall_after=20)
    assert clocks.observe([open_run(A, 3)], now=0) == []  # first seen: the clock starts
    assert clocks.observe([open_run(A, 3)], now=20) == []
    [(run, idle)] = clocks.observe([open_run(A, 3)], now=21)
    assert (run.id, idle) == (A, 21)


def test_any_progress_restarts_every_clock():
    clocks = IdleClocks(stall_after=20)
    clocks.observe([open_run(A, 3), open_run(B, 0)], now=0)
    # B moves: A's messages may be waiting behind B's in the queue.
    assert clocks.observe([open_run(A, 3), open_run(B, 5)], now=15) == []
    assert clocks.observe([open_run(A, 3), open_run(B, 5)], now=30) == []
    assert [r.id for r, _ in clocks.observe([open_run(A, 3), open_run(B, 5)], now=36)] == [A, B]


def test_a_held_run_lock_is_progress():
    clocks = IdleClocks(stall_after=20)
    for now in (0, 30, 60):
        assert clocks.observe([open_run(A, 0, locked=True)], now=now) == []


def test_a_failed_look_starts_the_clocks_again():
    clocks = IdleClocks(stall_after=20)
    clocks.observe([open_run(A, 3)], now=0)
    clocks.forget()  # the store was away: what happened meanwhile is unknown
    assert clocks.observe([open_run(A, 3)], now=25) == []
    assert clocks.observe([open_run(A, 3)], now=46) != []


def test_looks_come_at_a_sixth_of_the_bound_within_1_and_30_seconds():
    assert (look_every(3), look_every(60), look_every(1800)) == (1.0, 10.0, 30.0)
