"""The settings form, both ways, as pure functions: the values it shows, and the sync
settings a submitted form sets, checked, or one sentence saying what was refused.

The field map is shown the way an administrator thinks of it, one select per asset
field naming the Jira user field that fills it; it is stored the way the workers read
it, Jira field -> asset field (``ASSETSYNC_FIELD_MAP``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.settings import DEFAULT_FIELD_MAP, JIRA_FIELDS, Settings
from worker.store.console_reads import AssetTypeDef
from worker.store.scheme import COMPATIBLE
from worker.sync_config import check_stored, variable

MAP_PREFIX = "map:"  # form names map:<asset type>:<asset field> -> a Jira field, or ""
KIND_NAMES = {"text": "text", "identity": "an identity", "boolean": "a boolean"}


class Refused(Exception):
    """What the form asked for cannot be saved; the message is one sentence."""


@dataclass(frozen=True)
class FormValues:
    """What the form shows: the settings in force, and a field map for every asset type
    (the one in force for its type, a guess by field name for the others)."""

    sync_on_login: bool
    asset_type: str
    folder: str
    alphabetical_subfolders: bool
    missing_users: str
    missing_limit: str
    maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def shown(settings: Settings, types: Sequence[AssetTypeDef]) -> FormValues:
    maps = {}
    for t in types:
        source = settings.field_map if t.name == settings.asset_type else DEFAULT_FIELD_MAP
        names = {f.name for f in t.fields}
        maps[t.name] = {asset: jira for jira, asset in source.items() if asset in names}
    return FormValues(
        sync_on_login=settings.sync_on_login,
        asset_type=settings.asset_type,
        folder=settings.folder,
        alphabetical_subfolders=settings.alphabetical_subfolders,
        missing_users=settings.missing_users,
        missing_limit=settings.missing_limit,
        maps=maps,
    )


def syncable(types: Sequence[AssetTypeDef]) -> list[AssetTypeDef]:
    """The asset types users can be synced into: those with a unique field of type user."""
    return [t for t in types if t.user_field is not None]


def read(
    form: Mapping[str, str],
    *,
    types: Sequence[AssetTypeDef],
    pinned: Collection[str],
    in_force: Settings,
) -> dict[str, Any]:
    """The sync settings the submitted form sets, checked; those the environment pins
    are left out (their controls are disabled, and a forged post changes nothing).

    :raises Refused: naming the setting (by its label on the page) and why.
    """
    values: dict[str, Any] = {}
    if "sync_on_login" not in pinned:
        values["sync_on_login"] = form.get("sync_on_login") == "on"
    if "alphabetical_subfolders" not in pinned:
        values["alphabetical_subfolders"] = form.get("alphabetical_subfolders") == "on"
    by_name = {t.name: t for t in syncable(types)}
    asset_type = in_force.asset_type
    if "asset_type" not in pinned:
        asset_type = form.get("asset_type", "")
        if asset_type not in by_name:
            known = ", ".join(by_name) or "none"
            raise Refused(
                f"Asset type: the asset store has no asset type {asset_type!r} with a"
                f" unique user field (it has: {known})"
            )
        values["asset_type"] = asset_type
    chosen = by_name.get(asset_type)
    if "field_map" not in pinned and chosen is not None:
        values["field_map"] = field_map(form, chosen)
    elif chosen is not None:
        check_kinds(in_force.field_map, chosen, source=variable("field_map"))
    for name in ("folder", "missing_limit"):
        if name not in pinned:
            values[name] = form.get(name, "").strip()
    if "missing_users" not in pinned:
        values["missing_users"] = form.get("missing_users", "")
    try:
        checked = check_stored(values)
    except ValueError as exc:
        name, _, why = str(exc).partition(": ")
        raise Refused(f"{LABELS.get(name, name)}: {why}") from None
    return {name: getattr(checked, name) for name in values}


LABELS = {
    "sync_on_login": "Synchronize on login",
    "asset_type": "Asset type",
    "folder": "Folder",
    "alphabetical_subfolders": "Alphabetical subfolders",
    "field_map": "Fields",
    "missing_users": "Missing users",
    "missing_limit": "Missing limit",
}


def field_map(form: Mapping[str, str], asset_type: AssetTypeDef) -> dict[str, str]:
    """Jira field -> asset field, from the selects of ``asset_type``.

    :raises Refused: a Jira field chosen twice, not known, not fitting its asset field's
        type, or no asset field fed by ``name`` (the username is mandatory).
    """
    user_field = asset_type.user_field
    chosen: dict[str, str] = {}
    for f in asset_type.fields:
        if user_field is not None and f.id == user_field.id:
            continue
        jira = form.get(f"{MAP_PREFIX}{asset_type.name}:{f.name}", "")
        if not jira:
            continue
        if jira not in JIRA_FIELDS:
            raise Refused(f"{f.name}: Jira users have no field {jira!r}")
        if jira in chosen:
            raise Refused(
                f"{f.name}: {jira} already fills {chosen[jira]}; a Jira field can fill one"
                " asset field"
            )
        chosen[jira] = f.name
    if "name" not in chosen:
        raise Refused(
            "Username is mandatory: choose the asset field that Jira's name (the username)"
            " goes into"
        )
    check_kinds(chosen, asset_type, source="Fields")
    return chosen


def check_kinds(mapping: Mapping[str, str], asset_type: AssetTypeDef, *, source: str) -> None:
    """Every mapped Jira field's kind of value fits its asset field's type (a boolean
    fits a text field; text does not fit a boolean one).

    :raises Refused: naming the asset field.
    """
    fields = {f.name: f for f in asset_type.fields}
    for jira, asset in mapping.items():
        target = fields.get(asset)
        if target is None:
            raise Refused(f"{source}: asset type {asset_type.name} has no field {asset!r}")
        if target.field_type not in COMPATIBLE[JIRA_FIELDS[jira]]:
            raise Refused(
                f"{asset}: {jira} is {KIND_NAMES[JIRA_FIELDS[jira]]} and cannot go into a"
                f" field of type {target.field_type}"
            )
