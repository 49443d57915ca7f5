"""The asset type being synced: read once at start and checked against the settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from worker.errors import ConfigError

# Which asset field types can hold which kind of Jira value (a boolean goes into a text
# field as "true" or "false"; text never into a boolean field).
COMPATIBLE = {"text": {"text"}, "identity": {"user", "text"}, "boolean": {"boolean", "text"}}


@dataclass(frozen=True)
class FieldDef:
    id: int
    name: str
    field_type: str
    is_unique: bool


@dataclass(frozen=True)
class Scheme:
    """The asset type being synced and its fields, read once at start."""

    asset_type_id: int
    asset_type: str
    user_field: FieldDef
    fields: Mapping[str, FieldDef]
    active_field: str | None = None  # the field Jira's "active" flag is mapped onto


def load_scheme(
    conn: psycopg.Connection[Any],
    *,
    asset_type: str,
    user_field: str | None,
    field_map: Mapping[str, str],
    kinds: Mapping[str, str],
) -> Scheme:
    """Read and check the asset type against the sync settings.

    :param user_field: the field holding the Jira identity; ``None``: the asset type's
        unique field of type user (the first, should it have several).
    :param kinds: the kind of value each Jira field yields (``settings.JIRA_FIELDS``).
    :raises ConfigError: naming the first setting that does not fit the store.
    """
    row = conn.execute("SELECT id FROM asset_types WHERE name = %s", [asset_type]).fetchone()
    if row is None:
        names = [r[0] for r in conn.execute("SELECT name FROM asset_types ORDER BY name")]
        raise ConfigError(
            f"ASSETSYNC_ASSET_TYPE: no asset type {asset_type!r} in the asset store"
            f" (it has: {', '.join(names) or 'none'})"
        )
    fields = {
        r[1]: FieldDef(*r)
        for r in conn.execute(
            "SELECT id, name, field_type, is_unique FROM asset_fields"
            " WHERE asset_type_id = %s ORDER BY id",
            [row[0]],
        )
    }
    scheme = Scheme(
        asset_type_id=row[0],
        asset_type=asset_type,
        user_field=_user_field(fields, asset_type, user_field),
        fields=fields,
        active_field=field_map.get("active"),
    )
    _check_map(scheme, field_map, kinds)
    return scheme


def _user_field(fields: Mapping[str, FieldDef], asset_type: str, name: str | None) -> FieldDef:
    if name is None:
        found = next(iter(user_fields(fields.values())), None)
        if found is None:
            raise ConfigError(
                f"ASSETSYNC_ASSET_TYPE: asset type {asset_type!r} has no unique field of type"
                " user to hold the Jira identity"
            )
        return found
    found = fields.get(name)
    if found is None:
        raise ConfigError(f"ASSETSYNC_USER_FIELD: asset type {asset_type!r} has no field {name!r}")
    if found.field_type != "user":
        raise ConfigError(
            f"ASSETSYNC_USER_FIELD: field {name!r} is of type {found.field_type}, not user"
        )
    if not found.is_unique:
        raise ConfigError(
            f"ASSETSYNC_USER_FIELD: field {name!r} must be unique, so that each Jira user"
            " has exactly one asset"
        )
    return found


def _check_map(scheme: Scheme, field_map: Mapping[str, str], kinds: Mapping[str, str]) -> None:
    for jira_field, asset_field in field_map.items():
        target = scheme.fields.get(asset_field)
        if target is None:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: asset type {scheme.asset_type!r} has no field"
                f" {asset_field!r} (mapped from {jira_field})"
            )
        if target == scheme.user_field:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: {jira_field} is mapped onto {asset_field!r}, the user"
                " field that holds the Jira identity"
            )
        if target.field_type not in COMPATIBLE[kinds[jira_field]]:
            raise ConfigError(
                f"ASSETSYNC_FIELD_MAP: {jira_field} ({kinds[jira_field]}) cannot go into"
                f" {asset_field!r}, a field of type {target.field_type}"
            )


def user_fields(fields: Iterable[FieldDef]) -> list[FieldDef]:
    """The fields that can match Jira users: unique, of type user."""
    return [f for f in fields if f.field_type == "user" and f.is_unique]
