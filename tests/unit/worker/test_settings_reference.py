"""The settings reference (docs/settings.md) is generated from the settings model, and
says what the model says."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetsync.__main__ import COMMANDS
from worker import settings, settings_reference
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "settings.md"


def test_the_committed_reference_is_what_the_model_says() -> None:
    assert PAGE.read_text(encoding="utf-8") == settings_reference.render(), (
        "docs/settings.md and worker/settings.py differ: run `make settings-reference`"
    )


def test_every_setting_has_a_row_with_its_variable_default_and_readers() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        row = next(
            line for line in page.splitlines() if line.startswith(f"| `ASSETSYNC_{name.upper()}` |")
        )
        assert str(field.description).replace("|", "\\|") in row
        for command in field.json_schema_extra["read_by"]:  # type: ignore[index]
            assert f"`{command}`" in row
    assert "| `ASSETSYNC_JIRA_TIMEOUT` | number (> 0, ≤ 60) | `10` |" in page
    assert "| `ASSETSYNC_RETRY_DELAYS` | JSON list of numbers | `[1, 5, 30, 120, 600]` |" in page


def test_every_setting_says_what_it_is_and_which_commands_read_it() -> None:
    assert settings_reference.problems() == []


def test_readers_are_the_assetsync_commands() -> None:
    assert set(settings.COMMANDS) == set(COMMANDS)


def test_a_setting_without_a_doc_or_readers_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    field = Settings.model_fields["heartbeat"]
    monkeypatch.setattr(field, "description", None)
    monkeypatch.setattr(field, "json_schema_extra", {"group": "RabbitMQ", "read_by": ["wrker"]})

    assert settings_reference.problems() == [
        "heartbeat: no doc",
        "heartbeat: read_by names no such command wrker",
    ]


def test_check_fails_on_a_page_that_drifted(tmp_path: Path) -> None:
    page = tmp_path / "settings.md"
    page.write_text(settings_reference.render().replace("`30`", "`31`", 1), encoding="utf-8")

    assert settings_reference.main([str(page), "--check"]) == 1

    assert settings_reference.main([str(page)]) == 0
    assert settings_reference.main([str(page), "--check"]) == 0
    assert page.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
