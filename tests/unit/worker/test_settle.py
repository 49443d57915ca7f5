"""How a failed delivery is settled (``worker.settle``): one decision for every failure."""

from __future__ import annotations

import pytest

from worker.errors import (
    BrokerLost,
    BrokerRefused,
    ConfigError,
    Interrupted,
    InvalidMessage,
    JiraAuthError,
    JiraUnavailable,
    StoreDown,
    StoreRejected,
    StoreUnavailable,
    UserNotFound,
)
from worker.settle import (
    MAX_HOLDS,
    DeadLetter,
    Reconnect,
    Requeue,
    Retry,
    Stop,
    attempt_of,
    hold_back,
    settle,
    settle_unrecorded,
    worth_splitting,
)

DELAYS = (1.0, 5.0, 30.0)


def test_a_lost_broker_connection_is_never_settled_as_the_messages_fault() -> None:
    # Seen: a connection cut during a fan-out failed the run as an "internal error".
    assert settle(BrokerLost("gone"), attempt=1, delays=DELAYS) == Reconnect()


def test_a_shutdown_puts_the_message_back() -> None:
    assert settle(Interrupted("stopping"), attempt=3, delays=DELAYS) == Requeue()


def test_wrong_credentials_stop_the_replica_and_keep_the_message() -> None:
    error = JiraAuthError("Jira answered 401")
    assert settle(error, attempt=1, delays=DELAYS) == Stop(error)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 5.0), (3, 30.0)])
def test_a_transient_failure_waits_its_attempts_delay_and_counts_the_attempt(
    attempt: int, delay: float
) -> None:
    decision = settle(JiraUnavailable("Jira answered 503"), attempt=attempt, delays=DELAYS)
    assert decision == Retry(delay, attempt + 1, "Jira answered 503")


def test_retry_after_picks_a_longer_delay() -> None:
    decision = settle(JiraUnavailable("429", retry_after=4.0), attempt=1, delays=DELAYS)
    assert isinstance(decision, Retry)
    assert decision.delay == 5.0


def test_after_the_last_delay_a_transient_failure_is_given_up_on() -> None:
    decision = settle(StoreUnavailable("db down"), attempt=4, delays=DELAYS)
    assert decision == DeadLetter("gave up after 4 attempts: db down")


def test_a_refused_publish_is_retried_like_any_transient_failure() -> None:
    assert isinstance(settle(BrokerRefused("nacked"), attempt=1, delays=DELAYS), Retry)


@pytest.mark.parametrize(
    "error", [InvalidMessage("bad JSON"), UserNotFound("no such user"), StoreRejected("NUL")]
)
def test_a_permanent_failure_is_dead_lettered_with_its_reason(error: Exception) -> None:
    assert settle(error, attempt=1, delays=DELAYS) == DeadLetter(str(error))


def test_an_unexpected_error_is_dead_lettered_as_internal() -> None:
    decision = settle(KeyError("key"), attempt=1, delays=DELAYS)
    assert decision == DeadLetter("internal error: KeyError: 'key'")


def test_a_give_up_the_database_cannot_record_now_waits_the_longest_delay_keeping_its_count() -> (
    None
):
    decision = settle_unrecorded(
        StoreUnavailable("db down"), reason="no such user", attempt=2, delays=DELAYS
    )
    assert isinstance(decision, Retry)
    assert (decision.delay, decision.attempt) == (30.0, 2)


def test_a_give_up_the_database_refuses_to_record_is_dead_lettered_anyway() -> None:
    # Seen: a user-sync of an unknown run looped 21 times in 0.1 s, then was
    # dead-lettered by RabbitMQ's delivery limit without a reason.
    decision = settle_unrecorded(
        StoreRejected("foreign key violation"), reason="no such run", attempt=1, delays=DELAYS
    )
    assert decision == DeadLetter(
        "no such run (not recorded in its run: foreign key violation)", record=False
    )


def test_recording_interrupted_by_a_lost_broker_reconnects() -> None:
    decision = settle_unrecorded(BrokerLost("gone"), reason="x", attempt=1, delays=DELAYS)
    assert decision == Reconnect()


@pytest.mark.parametrize(
    ("error", "split"),
    [
        (StoreRejected("one bad row"), True),
        (KeyError("bug"), True),
        (StoreUnavailable("db down"), False),
        (BrokerLost("gone"), False),
        (ConfigError("bad settings"), False),
        (Interrupted("stopping"), False),
    ],
)
def test_only_a_failure_one_message_may_have_caused_splits_its_batch(
    error: Exception, split: bool
) -> None:
    assert worth_splitting(error) is split


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [(None, 1), ({}, 1), ({"a": 3}, 3), ({"a": "2"}, 2), ({"a": "x"}, 1), ({"a": -5}, 1)],
)
def test_the_attempt_comes_from_its_header_and_garbage_means_the_first(
    headers: dict[str, object] | None, attempt: int
) -> None:
    assert attempt_of(headers, "a") == attempt


def test_an_outage_of_the_store_is_waited_out_a_bounded_number_of_times() -> None:
    assert hold_back(StoreDown("read-only"), held=0)
    assert hold_back(StoreDown("read-only"), held=MAX_HOLDS - 1)
    assert not hold_back(StoreDown("read-only"), held=MAX_HOLDS)
    # A race lost, a timeout: the message's own retries, as before.
    assert not hold_back(StoreUnavailable("deadlock detected"), held=0)
    assert not hold_back(JiraUnavailable("503"), held=0)


def test_an_outage_of_the_store_past_the_holds_is_retried_like_any_transient_failure() -> None:
    decision = settle(StoreDown("read-only"), attempt=1, delays=DELAYS)
    assert isinstance(decision, Retry) and decision.attempt == 2


def test_a_copy_of_a_dead_letter_is_never_republished() -> None:
    from worker.settle import Discard, GiveBack, settle_copy

    assert settle_copy(InvalidMessage("unsigned")) == Discard("unsigned")
    assert settle_copy("bad signature") == Discard("bad signature")
    assert settle_copy(ValueError("x")) == Discard("ValueError: x")
    assert isinstance(settle_copy(StoreUnavailable("busy")), GiveBack)
    assert settle_copy(BrokerLost("gone")) == Reconnect()
    assert settle_copy(Interrupted("stopping")) == Requeue()


def test_a_request_whose_run_another_replica_holds_is_postponed_with_its_retries_kept() -> None:
    from worker.errors import RunBusy
    from worker.settle import postpone_delay

    assert settle(RunBusy("busy"), attempt=2, delays=(1.0, 5.0, 30.0, 600.0)) == Retry(
        30.0, 2, "busy"
    )
    assert settle(RunBusy("busy"), attempt=9, delays=DELAYS) == Retry(30.0, 9, "busy")
    assert postpone_delay((0.2, 0.5)) == 0.5
