"""``worker.jira.answers.retry_after``: Jira's ``Retry-After``, in seconds or as an HTTP
date, read as the seconds to wait (never negative; unreadable is none)."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from worker.jira import retry_after


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
