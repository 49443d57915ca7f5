"""``ASSETSYNC_MISSING_LIMIT``: a count or a percentage of the asset type's assets."""

from __future__ import annotations

import os

import pytest

from worker.errors import ConfigError
from worker.settings import MissingLimit, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ASSETSYNC_"):
            monkeypatch.delenv(name)


def test_the_default_is_five_percent_of_the_assets() -> None:
    limit = load_settings().missing_limit_rule
    assert limit.text == "5%"
    assert [limit.of(n) for n in (0, 19, 20, 200, 1000, 100_000)] == [0, 0, 1, 10, 50, 5000]


@pytest.mark.parametrize(
    ("text", "assets", "allowed"),
    [("50", 10, 50), ("0", 1000, 0), ("2.5%", 1000, 25), (" 10 % ", 55, 5), ("100%", 7, 7)],
)
def test_a_count_or_a_percentage_rounded_down(text: str, assets: int, allowed: int) -> None:
    assert MissingLimit.parse(text).of(assets) == allowed


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lots", "a count such as 50 or a percentage such as 5%"),
        ("-5", "a count such as 50"),
        ("101%", "cannot be more than 100%"),
        ("2.5", "whole number"),
    ],
)
def test_a_bad_value_stops_the_worker_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, text: str, says: str
) -> None:
    monkeypatch.setenv("ASSETSYNC_MISSING_LIMIT", text)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    line = str(caught.value)
    assert line.startswith("invalid setting ASSETSYNC_MISSING_LIMIT: ")
    assert says in line
