"""Which sync settings are in force: the environment over the stored version over the
defaults (pure: no server)."""

from __future__ import annotations

import pytest

from worker.settings import Settings
from worker.sync_config import check_stored, effective, from_environment, variable


def test_stored_settings_apply_where_the_environment_is_silent(monkeypatch):
    monkeypatch.delenv("ASSETSYNC_FOLDER", raising=False)
    env = Settings()
    now = effective(env, {"folder": "People / Staff", "sync_on_login": False})
    assert now.folder == "People/Staff"  # checked by the settings model's own rules
    assert now.sync_on_login is False
    assert now.asset_type == "Employee"  # not stored: the default


def test_an_environment_variable_wins_over_the_stored_setting(monkeypatch):
    monkeypatch.setenv("ASSETSYNC_FOLDER", "Pinned")
    env = Settings()
    assert from_environment(env) == {"folder"}
    now = effective(env, {"folder": "People", "missing_limit": "50"})
    assert now.folder == "Pinned"
    assert now.missing_limit_rule.count == 50
    assert variable("folder") == "ASSETSYNC_FOLDER"


def test_a_stored_setting_that_is_not_valid_is_named():
    with pytest.raises(ValueError, match="missing_limit: must be a count"):
        check_stored({"missing_limit": "lots"})
    with pytest.raises(ValueError, match=r"field_map: .*username mapping is mandatory"):
        check_stored({"field_map": {"displayName": "Full name"}})


def test_stored_names_this_version_does_not_own_are_ignored():
    # A newer version may store more; infrastructure settings are never taken from there.
    checked = check_stored({"amqp_url": "amqp://elsewhere", "color": "red", "folder": "X"})
    assert checked.folder == "X"
    assert checked.amqp_url.get_secret_value() != "amqp://elsewhere"
