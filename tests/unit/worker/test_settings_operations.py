"""The operations settings: ``ASSETSYNC_METRICS_PORT`` and ``ASSETSYNC_LOG_FORMAT``."""

from __future__ import annotations

import os

import pytest

from worker.errors import ConfigError
from worker.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ASSETSYNC_"):
            monkeypatch.delenv(name)


def test_metrics_are_off_and_logs_are_text_unless_set() -> None:
    settings = load_settings()

    assert settings.metrics_port is None
    assert settings.log_format == "text"


@pytest.mark.parametrize(("value", "port"), [("9100", 9100), ("", None)])
def test_metrics_port_is_read_and_empty_turns_it_off(monkeypatch, value, port) -> None:
    monkeypatch.setenv("ASSETSYNC_METRICS_PORT", value)

    assert load_settings().metrics_port == port


def test_log_format_json_is_read(monkeypatch) -> None:
    monkeypatch.setenv("ASSETSYNC_LOG_FORMAT", "json")

    assert load_settings().log_format == "json"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASSETSYNC_METRICS_PORT", "0"),
        ("ASSETSYNC_METRICS_PORT", "65536"),
        ("ASSETSYNC_METRICS_PORT", "metrics"),
        ("ASSETSYNC_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch, name, value) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    line = str(caught.value)
    assert line.startswith(f"invalid setting {name}: ")
    assert "\n" not in line
