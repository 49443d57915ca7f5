"""Who gives way when slow clients crowd the receiver (producers/webhooks/guard.py)."""

from __future__ import annotations

import pytest

from producers.webhooks.guard import SlowClientGuard

KIB = 1024


def guard(*, connections: int = 10, budget: int = 100 * KIB) -> SlowClientGuard[str]:
    return SlowClientGuard(max_connections=connections, body_budget=budget)


def test_a_newcomer_over_the_cap_pushes_out_the_oldest_connection_that_stopped_in_its_headers():
    g = guard(connections=3)
    for name in ("slow-1", "slow-2", "just-connected"):
        assert g.opened(name) == []
    g.sending("slow-1")  # a request line and a header, then nothing
    g.sending("slow-2")

    assert g.opened("jira") == ["slow-1"]
    assert g.opened("jira-2") == ["slow-2"]
    assert g.opened("jira-3") == ["just-connected"]  # then those that sent nothing yet
    assert g.connections == 3
    assert g.phase("slow-1") is None


def test_connections_being_handled_are_never_pushed_out_and_receiving_ones_go_after_waiting():
    g = guard(connections=3)
    for name in ("handled", "uploading", "idle"):
        g.opened(name)
    g.request("handled", 2 * KIB)
    g.body_complete("handled")
    g.request("uploading", 50 * KIB)

    assert g.opened("a") == ["idle"]
    assert g.request("a", 10 * KIB) == []
    assert g.opened("b") == ["uploading"]  # no one waits any more: the oldest upload
    assert g.opened("c") == ["b"]
    assert g.phase("handled") == "handling"
    assert g.phase("a") == "receiving"


def test_when_every_connection_is_being_handled_the_newcomer_is_refused():
    g = guard(connections=2)
    for name in ("x", "y"):
        g.opened(name)
        g.request(name, KIB)
        g.body_complete(name)

    assert g.opened("z") == ["z"]
    assert g.connections == 2


def test_bodies_reserve_the_budget_until_answered_and_a_large_one_that_does_not_fit_is_refused():
    g = guard(budget=100 * KIB)
    for name in ("up-1", "up-2", "up-3"):
        g.opened(name)
    assert g.request("up-1", 40 * KIB) == []
    assert g.request("up-2", 40 * KIB) == []

    assert g.request("up-3", 40 * KIB) is None  # large ones do not push out each other
    assert g.reserved == 80 * KIB
    assert g.phase("up-3") == "waiting"  # answered 503, and pushed out before the idle

    g.body_complete("up-1")
    assert g.reserved == 80 * KIB  # the app still holds the body it is handling
    assert g.answered("up-1") is True
    assert g.reserved == 40 * KIB
    assert g.phase("up-1") == "idle"  # kept alive for its next request


def test_a_small_delivery_pushes_out_the_oldest_larger_unfinished_bodies_as_far_as_needed():
    g = guard(budget=100 * KIB)
    for name in ("stall-1", "stall-2", "small-stall", "jira"):
        g.opened(name)
    g.request("stall-1", 45 * KIB)
    g.request("stall-2", 45 * KIB)
    g.request("small-stall", 9 * KIB)

    assert g.request("jira", 2 * KIB) == ["stall-1"]
    assert g.reserved == (45 + 9 + 2) * KIB
    assert g.phase("small-stall") == "receiving"


def test_a_body_answered_before_it_arrived_holds_nothing_and_then_waits_for_the_next_request():
    g = guard()
    g.opened("c")
    g.request("c", 60 * KIB)

    assert g.answered("c") is False  # e.g. 413: the rest of the body is discarded
    assert g.reserved == 0
    assert g.phase("c") == "receiving"
    assert g.body_complete("c") is True
    assert g.phase("c") == "idle"


def test_closing_frees_what_a_connection_reserved_whatever_its_phase():
    g = guard()
    for name in ("a", "b"):
        g.opened(name)
    g.request("a", 10 * KIB)
    g.request("b", 20 * KIB)
    g.body_complete("b")

    g.closed("a")
    g.closed("b")
    g.closed("b")  # twice (pushed out, then its connection_lost) is harmless

    assert (g.reserved, g.connections) == (0, 0)


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        SlowClientGuard(max_connections=0, body_budget=1)
