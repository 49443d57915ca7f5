"""``console.settings_form`` as pure functions: what a submitted settings form becomes,
and each refusal's one sentence."""

from __future__ import annotations

import pytest

from console import settings_form
from worker.settings import Settings
from worker.store.console_reads import AssetTypeDef
from worker.store.scheme import FieldDef

EMPLOYEE = AssetTypeDef(
    1,
    "Employee",
    (
        FieldDef(1, "User", "user", True),
        FieldDef(2, "Username", "text", False),
        FieldDef(3, "Full name", "text", False),
        FieldDef(4, "Active", "boolean", False),
    ),
)
NO_USER_FIELD = AssetTypeDef(2, "Laptop", (FieldDef(5, "Serial", "text", False),))


def form(**fields: str) -> dict[str, str]:
    base = {
        "sync_on_login": "on",
        "asset_type": "Employee",
        "folder": "People / Staff",
        "missing_users": "mark",
        "missing_limit": "5%",
        "map:Employee:Username": "name",
        "map:Employee:Full name": "displayName",
        "map:Employee:Active": "active",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def read(submitted: dict[str, str], pinned: frozenset[str] = frozenset()) -> dict:
    return settings_form.read(
        submitted, types=[EMPLOYEE, NO_USER_FIELD], pinned=pinned, in_force=Settings()
    )


def test_a_form_becomes_the_stored_settings_the_workers_read():
    assert read(form()) == {
        "sync_on_login": True,
        "alphabetical_subfolders": False,  # an unchecked box is not sent
        "asset_type": "Employee",
        "field_map": {"name": "Username", "displayName": "Full name", "active": "Active"},
        "folder": "People/Staff",
        "missing_limit": "5%",
        "missing_users": "mark",
    }


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        ({"map:Employee:Username": ""}, "Username is mandatory"),
        (
            {"map:Employee:Active": "emailAddress"},
            "Active: emailAddress is text and cannot go into a field of type boolean",
        ),
        ({"map:Employee:Full name": "name"}, "Full name: name already fills Username"),
        ({"map:Employee:Full name": "shoeSize"}, "Full name: Jira users have no field 'shoeSize'"),
        (
            {"asset_type": "Laptop"},
            "Asset type: the asset store has no asset type 'Laptop' with a unique user field",
        ),
        ({"folder": "a//b"}, "Folder: folder must be a path"),
        ({"missing_limit": "lots"}, "Missing limit: must be a count such as 50"),
        ({"missing_users": "delete"}, "Missing users: "),
    ],
)
def test_what_does_not_fit_is_refused_naming_the_control(fields, sentence):
    with pytest.raises(settings_form.Refused) as refused:
        read(form(**fields))
    assert str(refused.value).startswith(sentence)


def test_a_boolean_may_fill_a_text_field():
    assert read(form(**{"map:Employee:Full name": "active", "map:Employee:Active": ""}))[
        "field_map"
    ] == {"name": "Username", "active": "Full name"}


def test_settings_the_environment_pins_are_not_taken_from_the_form():
    values = read(form(folder="Forged"), pinned=frozenset({"folder", "sync_on_login"}))
    assert "folder" not in values and "sync_on_login" not in values
