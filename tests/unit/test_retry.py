"""Retry timing: ``worker.settle.pick_delay`` and ``worker.jira.retry_after``.

A transiently failed message waits for the configured delay of its attempt, or longer
when Jira's ``Retry-After`` asks for more, but never longer than the last delay.
"""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from schemas.topology import DEFAULT_RETRY_DELAYS
from worker.jira import retry_after
from worker.settle import pick_delay

DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0)


def test_default_retry_schedule_is_1s_5s_30s_2min_10min() -> None:
    assert DEFAULT_RETRY_DELAYS == DELAYS


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


def header(value: str) -> httpx.Headers:
    return httpx.Headers({"Retry-After": value})


def test_retry_after_in_seconds() -> None:
    assert retry_after(header("120")) == 120.0
    assert retry_after(header("1.5")) == 1.5


def test_retry_after_as_http_date_is_seconds_from_now() -> None:
    when = formatdate(time.time() + 90, usegmt=True)

    assert retry_after(header(when)) == pytest.approx(90, abs=2)


def test_retry_after_date_in_the_past_is_zero() -> None:
    assert retry_after(header("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0


def test_negative_retry_after_is_zero() -> None:
    assert retry_after(header("-5")) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "12 seconds"])
def test_unreadable_retry_after_is_none(value: str) -> None:
    assert retry_after(header(value)) is None


def test_missing_retry_after_is_none() -> None:
    assert retry_after(httpx.Headers({"Content-Type": "application/json"})) is None
