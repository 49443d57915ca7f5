"""Retry timing: ``worker.settle.pick_delay``, and the default schedule.

A transiently failed message waits for the configured delay of its attempt, or longer
when Jira's ``Retry-After`` asks for more, but never longer than the last delay.
"""

from __future__ import annotations

import pytest

from worker.errors import JiraUnavailable
from worker.settings import Settings
from worker.settle import DeadLetter, Retry, pick_delay, settle

DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0)


def test_by_default_a_transient_failure_waits_1s_5s_30s_2min_10min_then_is_dead_lettered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a worker does without ASSETSYNC_RETRY_DELAYS (README: Failures): each attempt's
    # wait, and the delay queue (its TTL) the retry waits in.
    monkeypatch.delenv("ASSETSYNC_RETRY_DELAYS", raising=False)
    settings = Settings()
    down = JiraUnavailable("Jira answered 503")

    decisions = [settle(down, attempt=n, delays=settings.retry_delays) for n in range(1, 7)]
    waits = [d.delay for d in decisions if isinstance(d, Retry)]
    ttls = {
        q.name: q.arguments["x-message-ttl"]
        for q in settings.topology.queues()
        if ".retry." in q.name
    }

    assert waits == [1, 5, 30, 120, 600]
    assert decisions[-1] == DeadLetter("gave up after 6 attempts: Jira answered 503")
    assert ttls == {f"assetsync.retry.{ms}ms": ms for ms in (1000, 5000, 30000, 120000, 600000)}


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 5.0), (3, 30.0), (5, 600.0)])
def test_without_retry_after_the_attempt_gets_its_configured_delay(
    attempt: int, delay: float
) -> None:
    assert pick_delay(DELAYS, attempt, None) == delay


def test_retry_after_shorter_than_the_configured_delay_is_ignored() -> None:
    assert pick_delay(DELAYS, 4, 3.0) == 120.0


@pytest.mark.parametrize(
    ("attempt", "asked", "delay"), [(1, 10.0, 30.0), (1, 5.0, 5.0), (2, 31.0, 120.0)]
)
def test_longer_retry_after_picks_the_first_configured_delay_that_covers_it(
    attempt: int, asked: float, delay: float
) -> None:
    assert pick_delay(DELAYS, attempt, asked) == delay


def test_retry_after_beyond_every_delay_picks_the_last_one() -> None:
    assert pick_delay(DELAYS, 1, 3600.0) == 600.0
