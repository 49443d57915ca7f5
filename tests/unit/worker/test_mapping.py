"""``worker.mapping.plan_asset``: what asset a Jira user snapshot should become.

Covers the default field map, the folder (with and without alphabetical subfolders),
Cloud users without a username, and how empty values and groups are written.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.messages import JiraUser
from worker.mapping import MappingRules, plan_asset
from worker.settings import DEFAULT_FIELD_MAP

SEEN_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def dc_user(**overrides: object) -> JiraUser:
    fields: dict[str, object] = {
        "jira_id": "JIRAUSER10100",
        "key": "JIRAUSER10100",
        "name": "jdoe",
        "display_name": "Jane Doe",
        "email_address": "jane.doe@example.com",
    }
    fields.update(overrides)
    return JiraUser(**fields)


def cloud_user(**overrides: object) -> JiraUser:
    fields: dict[str, object] = {
        "jira_id": "5b10ac8d82e05b22cc7d4ef5",
        "account_id": "5b10ac8d82e05b22cc7d4ef5",
        "display_name": "Chris Cloud",
        "email_address": "chris@example.com",
    }
    fields.update(overrides)
    return JiraUser(**fields)


def rules(
    *,
    field_map: dict[str, str] | None = None,
    folder: tuple[str, ...] = ("Employees",),
    alphabetical: bool = True,
    user_field: str = "User",
) -> MappingRules:
    return MappingRules(
        field_map=DEFAULT_FIELD_MAP if field_map is None else field_map,
        user_field=user_field,
        folder=folder,
        alphabetical=alphabetical,
    )


def test_default_field_map_fills_identity_username_name_email_and_active() -> None:
    plan = plan_asset(dc_user(), rules(), seen_at=SEEN_AT)

    assert plan.jira_id == "JIRAUSER10100"
    assert plan.seen_at == SEEN_AT
    assert dict(plan.values) == {
        "User": "JIRAUSER10100",
        "Username": "jdoe",
        "Full name": "Jane Doe",
        "E-mail": "jane.doe@example.com",
        "Active": True,
    }


def test_inactive_user_is_planned_with_active_false() -> None:
    plan = plan_asset(dc_user(active=False), rules(), seen_at=SEEN_AT)

    assert plan.values["Active"] is False


def test_alphabetical_subfolder_is_upper_cased_first_letter_of_display_name() -> None:
    plan = plan_asset(dc_user(display_name="jane doe", name="xavier"), rules(), seen_at=SEEN_AT)

    assert plan.folder == ("Employees", "J")


@pytest.mark.parametrize(
    ("display_name", "subfolder"),
    [
        ("Östen Berg", "Ö"),
        ("émile Zola", "É"),
        ("   zoe", "Z"),
        ("42 Operations", "#"),
        ("_service", "#"),
        ("(Contractor) Bob", "#"),
    ],
)
def test_alphabetical_subfolder_for_unusual_names(display_name: str, subfolder: str) -> None:
    plan = plan_asset(dc_user(display_name=display_name), rules(), seen_at=SEEN_AT)

    assert plan.folder == ("Employees", subfolder)


@pytest.mark.parametrize("display_name", [None, ""])
def test_alphabetical_subfolder_falls_back_to_username(display_name: str | None) -> None:
    plan = plan_asset(dc_user(display_name=display_name, name="bob"), rules(), seen_at=SEEN_AT)

    assert plan.folder == ("Employees", "B")


def test_without_subfolders_the_asset_goes_into_the_configured_folder() -> None:
    plan = plan_asset(
        dc_user(), rules(folder=("People", "Staff"), alphabetical=False), seen_at=SEEN_AT
    )

    assert plan.folder == ("People", "Staff")


def test_cloud_user_without_username_uses_email_as_username() -> None:
    plan = plan_asset(cloud_user(), rules(), seen_at=SEEN_AT)

    assert plan.values["Username"] == "chris@example.com"
    assert plan.values["User"] == "5b10ac8d82e05b22cc7d4ef5"


def test_cloud_user_with_hidden_email_uses_account_id_as_username() -> None:
    user = cloud_user(email_address=None, display_name=None)

    plan = plan_asset(user, rules(), seen_at=SEEN_AT)

    assert plan.values["Username"] == "5b10ac8d82e05b22cc7d4ef5"
    assert plan.values["E-mail"] is None
    assert plan.folder == ("Employees", "#")  # the accountId starts with a digit


def test_groups_are_joined_in_sorted_order() -> None:
    field_map = {"name": "Username", "groups": "Groups"}
    user = dc_user(groups=("jira-users", "confluence-users", "admins"))

    plan = plan_asset(user, rules(field_map=field_map), seen_at=SEEN_AT)

    assert plan.values["Groups"] == "admins, confluence-users, jira-users"


@pytest.mark.parametrize("groups", [None, ()])
def test_no_groups_is_an_empty_value(groups: tuple[str, ...] | None) -> None:
    field_map = {"name": "Username", "groups": "Groups"}

    plan = plan_asset(dc_user(groups=groups), rules(field_map=field_map), seen_at=SEEN_AT)

    assert plan.values["Groups"] is None


def test_empty_optional_values_are_none() -> None:
    field_map = {
        "name": "Username",
        "displayName": "Full name",
        "emailAddress": "E-mail",
        "timeZone": "Time zone",
        "locale": "Locale",
        "avatarUrl": "Avatar",
    }
    user = dc_user(display_name="", email_address="", time_zone=None, locale="", avatar_url=None)

    plan = plan_asset(user, rules(field_map=field_map), seen_at=SEEN_AT)

    assert [plan.values[f] for f in ("Full name", "E-mail", "Time zone", "Locale", "Avatar")] == [
        None
    ] * 5


def test_user_field_holds_jira_id_alongside_mapped_key_and_account_id() -> None:
    field_map = {"name": "Username", "key": "Jira key", "accountId": "Account"}

    plan = plan_asset(
        dc_user(), rules(field_map=field_map, user_field="Jira user"), seen_at=SEEN_AT
    )

    assert plan.values["Jira user"] == "JIRAUSER10100"
    assert plan.values["Jira key"] == "JIRAUSER10100"
    assert plan.values["Account"] is None
