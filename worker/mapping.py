"""Pure mapping: a Jira user snapshot becomes the asset it should be.

No I/O here. ``plan_asset`` decides the folder and every mapped field value; the store
compares that plan with what it holds and writes only the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas.messages import JiraUser

Value = str | bool | None
NO_LETTER_FOLDER = "#"


@dataclass(frozen=True, kw_only=True)
class MappingRules:
    """What the sync settings say about shaping an asset.

    :param field_map: Jira user field -> asset field name.
    :param user_field: the asset field of type user that holds the Jira identity.
    :param folder: the target folder path, e.g. ``("Employees",)``.
    :param alphabetical: file each asset under a subfolder named by its first letter.
    """

    field_map: Mapping[str, str]
    user_field: str
    folder: tuple[str, ...]
    alphabetical: bool

    @property
    def active_field(self) -> str | None:
        return self.field_map.get("active")


@dataclass(frozen=True, kw_only=True)
class AssetPlan:
    """What one user's asset should look like, as of the snapshot time ``seen_at``."""

    jira_id: str
    folder: tuple[str, ...]
    values: Mapping[str, Value]
    seen_at: datetime


def plan_asset(user: JiraUser, rules: MappingRules, *, seen_at: datetime) -> AssetPlan:
    values: dict[str, Value] = {rules.user_field: user.jira_id}
    for jira_field, asset_field in rules.field_map.items():
        values[asset_field] = jira_value(user, jira_field)
    return AssetPlan(
        jira_id=user.jira_id,
        folder=folder_for(user, rules),
        values=values,
        seen_at=seen_at,
    )


def jira_value(user: JiraUser, jira_field: str) -> Value:
    """The value of one mappable Jira field; ``None`` means "empty"."""
    match jira_field:
        case "name":
            return username(user)
        case "key":
            return user.key
        case "accountId":
            return user.account_id
        case "displayName":
            return user.display_name or None
        case "emailAddress":
            return user.email_address or None
        case "active":
            return user.active
        case "timeZone":
            return user.time_zone or None
        case "locale":
            return user.locale or None
        case "groups":
            return ", ".join(sorted(user.groups)) if user.groups else None
        case "avatarUrl":
            return user.avatar_url or None
    raise KeyError(jira_field)


def username(user: JiraUser) -> str:
    # Cloud accounts have no username; the e-mail address is what admins recognise,
    # and the accountId is there when privacy settings hide the address.
    return user.name or user.email_address or user.account_id or user.jira_id


def folder_for(user: JiraUser, rules: MappingRules) -> tuple[str, ...]:
    if not rules.alphabetical:
        return rules.folder
    return (*rules.folder, initial((user.display_name or "").strip() or username(user)))


def initial(name: str) -> str:
    """The subfolder for a name: its upper-cased first letter, or ``#``."""
    first = name.strip()[:1]
    if not first.isalpha():
        return NO_LETTER_FOLDER
    upper = first.upper()
    return upper if len(upper) == 1 else first  # "ß".upper() is "SS"
