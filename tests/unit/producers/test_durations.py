"""Durations on the command line (``--unless-recent 20h``)."""

from __future__ import annotations

import pytest

from producers.durations import parse_duration, short_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20h", 72000),
        ("90m", 5400),
        ("1d12h", 129600),
        ("45s", 45),
        ("3600", 3600),
        ("1.5h", 5400),
        (" 2H ", 7200),
    ],
)
def test_durations_people_write(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "0", "0h", "20x", "1h 30m", "-1h", "1h-"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "?"), (-3, "0s"), (59, "59s"), (60, "1m"), (3660, "1h01m"), (90000, "1d01h")],
)
def test_short_durations(seconds, shown):
    assert short_duration(seconds) == shown
