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
    assert g.request("a", 10 * KIB) == ([], True)
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


def test_bodies_reserve_the_budget_until_answered_and_one_that_does_not_fit_waits_unread():
    g = guard(budget=100 * KIB)
    for name in ("up-1", "up-2", "up-3"):
        g.opened(name)
    assert g.request("up-1", 40 * KIB) == ([], True)
    assert g.request("up-2", 40 * KIB) == ([], True)

    assert g.request("up-3", 40 * KIB) == ([], False)  # large ones do not push out each other
    assert (g.reserved, g.phase("up-3")) == (80 * KIB, "queued")

    g.body_complete("up-1")
    assert g.reserved == 80 * KIB  # the app still holds the body it is handling
    assert g.admitted() == []
    assert g.answered("up-1") is True
    assert g.phase("up-1") == "idle"  # kept alive for its next request
    assert g.admitted() == ["up-3"]  # its room is free now: read its body
    assert (g.reserved, g.phase("up-3")) == (80 * KIB, "receiving")
    assert g.admitted() == []


def test_queued_bodies_are_admitted_oldest_first_as_room_frees_and_any_that_fits_goes():
    g = guard(budget=100 * KIB)
    for name in ("big", "q-large", "q-small", "q-small-2"):
        g.opened(name)
    g.request("big", 95 * KIB)
    assert g.request("q-large", 95 * KIB)[1] is False  # as large: it waits
    assert g.request("q-small", 10 * KIB) == (["big"], True)  # smaller pushes out larger

    g.closed("q-small")

    assert g.admitted() == ["q-large"]
    assert g.request("q-small-2", 10 * KIB) == (["q-large"], True)


def test_queued_connections_go_before_idle_ones_when_too_many_connect():
    g = guard(connections=3, budget=10 * KIB)
    for name in ("just-connected", "uploading", "queued"):
        g.opened(name)
    g.request("uploading", 10 * KIB)
    g.request("queued", 10 * KIB)

    assert g.opened("jira") == ["queued"]
    assert g.opened("jira-2") == ["just-connected"]


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
