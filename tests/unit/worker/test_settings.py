"""``worker.settings``: reading ``ASSETSYNC_*`` settings, and the one-line error on bad ones.

Each test starts from an environment without any ``ASSETSYNC_*`` variable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from worker.__main__ import main
from worker.cli import EXIT_CONFIG
from worker.errors import ConfigError
from worker.settings import DEFAULT_FIELD_MAP, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ASSETSYNC_"):
            monkeypatch.delenv(name)


def settings_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_defaults_without_any_environment() -> None:
    settings = load_settings()

    assert settings.field_map == DEFAULT_FIELD_MAP
    assert settings.folder_path == ("Employees",)
    assert settings.asset_type == "Employee"


def test_settings_are_read_from_assetsync_prefixed_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSETSYNC_ASSET_TYPE", "Person")
    monkeypatch.setenv("ASSETSYNC_JIRA_URL", "https://jira.example.com")
    monkeypatch.setenv("ASSETSYNC_ALPHABETICAL_SUBFOLDERS", "false")
    monkeypatch.setenv("USER_FIELD", "not read without the prefix")

    settings = load_settings()

    assert settings.asset_type == "Person"
    assert settings.jira_url == "https://jira.example.com"
    assert settings.alphabetical_subfolders is False
    assert settings.user_field == "User"


def test_field_map_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    field_map = {"name": "Login", "groups": "Groups", "active": "Enabled"}
    monkeypatch.setenv("ASSETSYNC_FIELD_MAP", json.dumps(field_map))

    assert load_settings().field_map == field_map


def test_unknown_jira_field_is_rejected_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    line = settings_error(
        monkeypatch, "ASSETSYNC_FIELD_MAP", '{"name": "Username", "department": "Dept"}'
    )

    assert line.startswith("invalid setting ASSETSYNC_FIELD_MAP:")
    assert "unknown Jira field(s) department" in line


def test_field_map_without_username_mapping_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    line = settings_error(monkeypatch, "ASSETSYNC_FIELD_MAP", '{"displayName": "Full name"}')

    assert 'the username mapping is mandatory: add "name"' in line


def test_asset_field_mapped_twice_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    line = settings_error(
        monkeypatch,
        "ASSETSYNC_FIELD_MAP",
        '{"name": "Login", "emailAddress": "Contact", "displayName": "Contact"}',
    )

    assert "asset field(s) mapped twice: Contact" in line


@pytest.mark.parametrize(
    ("folder", "path"),
    [
        ("Employees", ("Employees",)),
        ("People/Staff", ("People", "Staff")),
        ("  People /  Staff ", ("People", "Staff")),
    ],
)
def test_folder_path_is_split_and_trimmed(
    monkeypatch: pytest.MonkeyPatch, folder: str, path: tuple[str, ...]
) -> None:
    monkeypatch.setenv("ASSETSYNC_FOLDER", folder)

    assert load_settings().folder_path == path


@pytest.mark.parametrize("folder", ["", "/Employees", "People/", "People//Staff", "People/ /Staff"])
def test_folder_path_with_empty_part_is_rejected(
    monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    line = settings_error(monkeypatch, "ASSETSYNC_FOLDER", folder)

    assert line.startswith("invalid setting ASSETSYNC_FOLDER:")


def test_secrets_are_not_shown_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETSYNC_JIRA_TOKEN", "tok-4d1c9e")
    monkeypatch.setenv("ASSETSYNC_AMQP_URL", "amqp://sync:amqp-pw-77@mq:5672/%2F")
    monkeypatch.setenv("ASSETSYNC_DATABASE_URL", "postgresql://sync:db-pw-88@db/assets")

    settings = load_settings()

    shown = repr(settings) + str(settings)
    for secret in ("tok-4d1c9e", "amqp-pw-77", "db-pw-88"):
        assert secret not in shown
    assert settings.jira_token is not None
    assert settings.jira_token.get_secret_value() == "tok-4d1c9e"


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / "assetsync.env"
    env_file.write_text(
        "ASSETSYNC_ASSET_TYPE=Contractor\n"
        'ASSETSYNC_FIELD_MAP={"name": "Login", "locale": "Language"}\n'
    )

    settings = load_settings(env_file)

    assert settings.asset_type == "Contractor"
    assert settings.field_map == {"name": "Login", "locale": "Language"}


def test_environment_wins_over_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "assetsync.env"
    env_file.write_text("ASSETSYNC_ASSET_TYPE=Contractor\n")
    monkeypatch.setenv("ASSETSYNC_ASSET_TYPE", "Employee-2")

    assert load_settings(env_file).asset_type == "Employee-2"


def test_missing_env_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.env"

    with pytest.raises(ConfigError) as caught:
        load_settings(missing)

    assert str(caught.value) == f"settings file not found: {missing}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASSETSYNC_JIRA_TIMEOUT", "0"),
        ("ASSETSYNC_JIRA_FLAVOR", "server"),
        ("ASSETSYNC_RETRY_DELAYS", "[1, -5]"),
        ("ASSETSYNC_AMQP_PREFIX", "has space"),
    ],
)
def test_settings_error_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    line = settings_error(monkeypatch, name, value)

    assert line.startswith(f"invalid setting {name}: ")
    assert "\n" not in line


def test_field_map_that_is_not_json_gives_one_line_and_config_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSETSYNC_FIELD_MAP", "{name: Username}")

    with pytest.raises(SystemExit) as exited:
        main(["check"])
    assert exited.value.code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "ASSETSYNC_FIELD_MAP" in err


def test_an_empty_health_file_setting_turns_the_health_file_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSETSYNC_HEALTH_FILE", "")
    assert Settings().health_file is None


def test_credentials_in_the_jira_url_are_refused_without_repeating_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Seen: user:password@ in the URL was printed by `check`, the start-up line, a
    # context-path error and the settings' repr.
    monkeypatch.setenv("ASSETSYNC_JIRA_URL", "https://bob:hunter2@jira.example.com")

    with pytest.raises(SystemExit) as exited:
        main(["check"])
    assert exited.value.code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.strip() == (
        "python -m worker: invalid setting ASSETSYNC_JIRA_URL: must not contain credentials: set"
        " ASSETSYNC_JIRA_USERNAME and ASSETSYNC_JIRA_TOKEN instead"
    )
    assert "hunter2" not in err


@pytest.mark.parametrize("url", ["ftp://jira.example.com", "jira.example.com", "https://j?x=1"])
def test_a_jira_url_that_is_not_a_base_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("ASSETSYNC_JIRA_URL", url)
    with pytest.raises(ConfigError, match=r"ASSETSYNC_JIRA_URL"):
        load_settings()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8090", ("0.0.0.0", 8090)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::]:8090", ("::", 8090)),
        ("hooks.internal:443", ("hooks.internal", 443)),
    ],
)
def test_the_receivers_listen_address_is_host_and_port(monkeypatch, listen, expected) -> None:
    monkeypatch.setenv("ASSETSYNC_WEBHOOK_LISTEN", listen)

    assert load_settings().webhook_address == expected


@pytest.mark.parametrize("listen", ["8090", ":8090", "host:", "host:http", "host:70000", "[]:80"])
def test_a_listen_address_that_is_not_host_port_is_refused(monkeypatch, listen) -> None:
    line = settings_error(monkeypatch, "ASSETSYNC_WEBHOOK_LISTEN", listen)

    assert line == f"invalid setting ASSETSYNC_WEBHOOK_LISTEN: {listen!r} is not HOST:PORT"


def test_a_blank_webhook_secret_counts_as_no_secret(monkeypatch) -> None:
    monkeypatch.setenv("ASSETSYNC_WEBHOOK_SECRET", "  ")

    assert load_settings().webhook_secret is None


@pytest.mark.parametrize(("value", "level"), [("debug", "DEBUG"), (" Warning ", "WARNING")])
def test_the_log_level_is_read_in_any_case(monkeypatch, value, level) -> None:
    monkeypatch.setenv("ASSETSYNC_LOG_LEVEL", value)

    assert load_settings().log_level == level


def test_an_unknown_log_level_is_refused_before_anything_logs(monkeypatch) -> None:
    line = settings_error(monkeypatch, "ASSETSYNC_LOG_LEVEL", "verbose")

    assert line.startswith("invalid setting ASSETSYNC_LOG_LEVEL: must be one of DEBUG, INFO")


def test_the_security_log_status_address_is_unset_by_default_or_host_and_port(monkeypatch) -> None:
    assert load_settings().security_log_address is None
    monkeypatch.setenv("ASSETSYNC_SECURITY_LOG_LISTEN", "[::]:9102")
    assert load_settings().security_log_address == ("::", 9102)
    line = settings_error(monkeypatch, "ASSETSYNC_SECURITY_LOG_LISTEN", "9102")
    assert line == "invalid setting ASSETSYNC_SECURITY_LOG_LISTEN: '9102' is not HOST:PORT"


def test_the_consoles_security_log_urls_are_a_comma_separated_list_of_http_urls(
    monkeypatch,
) -> None:
    assert load_settings().security_log_urls == ()
    monkeypatch.setenv(
        "ASSETSYNC_CONSOLE_SECURITY_LOG_URLS", " http://jira-1:9102 ,http://jira-2:9102,"
    )
    assert load_settings().security_log_urls == ("http://jira-1:9102", "http://jira-2:9102")
    line = settings_error(monkeypatch, "ASSETSYNC_CONSOLE_SECURITY_LOG_URLS", "jira-1:9102")
    assert line == (
        "invalid setting ASSETSYNC_CONSOLE_SECURITY_LOG_URLS: must be http:// or https:// URLs,"
        " comma-separated"
    )
