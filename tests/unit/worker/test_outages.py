"""An outage of the asset store waited out by the loop (``worker.outages``), with a handler
and a loop of the test's own: what is handled again, what is settled, and that the broker
connection is kept alive meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from worker import outages
from worker.errors import Interrupted, JiraUnavailable, StoreDown
from worker.handling import Failures
from worker.settle import MAX_HOLDS


class FakeLoop:
    def __init__(self) -> None:
        self.ticks = 0
        self.stop = threading.Event()

    def publish(self, messages: Sequence[Any]) -> None:
        raise AssertionError("nothing is published here")

    def tick(self) -> None:
        self.ticks += 1
        if self.stop.is_set():
            raise Interrupted("stopping")

    def sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted("stopping")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "PROBE_DELAYS", (0.01,))
    monkeypatch.setattr(outages, "KEEP_ALIVE_EVERY", 0.01)


class Store:
    """Down for the first ``down_for`` questions."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.asked = 0

    def takes_writes(self) -> bool:
        self.asked += 1
        return self.asked > self.down_for


def test_a_batch_that_met_an_outage_is_handled_again_once_the_store_takes_writes() -> None:
    calls: list[list[str]] = []

    def handle(bodies: Sequence[str], loop: Any) -> Failures:
        calls.append(list(bodies))
        if len(calls) < 3:
            raise StoreDown("cannot execute INSERT in a read-only transaction")
        return {}

    store = Store(down_for=4)
    failures = outages.handle_through_outages(
        handle, ["a", "b"], FakeLoop(), takes_writes=store.takes_writes
    )
    assert failures == {}
    assert calls == [["a", "b"]] * 3
    assert store.asked == 4 + 2  # until it answered yes, once per outage


def test_only_what_failed_because_of_the_outage_is_handled_again() -> None:
    jira_down = JiraUnavailable("Jira answered 503")
    calls: list[list[str]] = []

    def handle(bodies: Sequence[str], loop: Any) -> Failures:
        calls.append(list(bodies))
        if len(calls) == 1:  # a done, b failed on its own, c and d met the outage
            return {1: jira_down, 2: StoreDown("gone"), 3: StoreDown("gone")}
        return {1: StoreDown("gone again")} if len(calls) == 2 else {}

    failures = outages.handle_through_outages(
        handle, ["a", "b", "c", "d"], FakeLoop(), takes_writes=Store().takes_writes
    )
    assert calls == [["a", "b", "c", "d"], ["c", "d"], ["d"]]
    assert failures == {1: jira_down}  # by the batch's own indexes; the rest is done


def test_a_batch_that_keeps_meeting_an_outage_is_settled_after_the_bound() -> None:
    calls = 0

    def handle(bodies: Sequence[str], loop: Any) -> Failures:
        nonlocal calls
        calls += 1
        raise StoreDown("the connection died again")

    with pytest.raises(StoreDown):
        outages.handle_through_outages(handle, ["a"], FakeLoop(), takes_writes=lambda: True)
    assert calls == MAX_HOLDS + 1


def test_one_message_that_keeps_meeting_it_is_settled_and_the_others_are_done() -> None:
    def handle(bodies: Sequence[str], loop: Any) -> Failures:
        return {i: StoreDown("down") for i, b in enumerate(bodies) if b == "bad"}

    failures = outages.handle_through_outages(
        handle, ["ok", "bad"], FakeLoop(), takes_writes=lambda: True
    )
    assert list(failures) == [1] and isinstance(failures[1], StoreDown)


def test_a_replica_stopping_during_the_wait_puts_the_held_deliveries_back() -> None:
    loop = FakeLoop()

    def handle(bodies: Sequence[str], loop: Any) -> Failures:
        return {0: JiraUnavailable("503"), 2: StoreDown("down")}

    def never() -> bool:
        loop.stop.set()
        return False

    failures = outages.handle_through_outages(handle, ["a", "b", "c"], loop, takes_writes=never)
    assert isinstance(failures[0], JiraUnavailable)
    assert isinstance(failures[2], Interrupted)
    assert 1 not in failures  # done before the outage: stays done


def test_heartbeats_flow_while_a_question_to_the_store_is_out() -> None:
    loop = FakeLoop()
    store = Store(down_for=1)

    def slow() -> bool:
        time.sleep(0.3)  # a database that takes its time to answer
        return store.takes_writes()

    outages.wait_for_store(StoreDown("down"), 1, loop, takes_writes=slow)
    assert loop.ticks >= 2 * 0.3 / 0.01 * 0.5  # every keep-alive interval, roughly
