"""Users and groups as Jira's JSON: Data Center's (REST v2) and Cloud's (REST v3)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import quote

from demo.fake_jira.directory import Group, User

Json = dict[str, Any]

CLOUD_AVATAR_BASE = "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net"
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


class HttpError(Exception):
    """An endpoint's refusal: becomes a Jira error body with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- JSON rendering ---------------------------------------------------------------------------


def _quote(text: str) -> str:
    # quote() dominated page rendering; almost every value is URL-safe already.
    return text if _URL_SAFE.fullmatch(text) else quote(text)


def _dc_avatars(base: str, key: str) -> dict[str, str]:
    tail = f"ownerId={_quote(key)}&avatarId=10122"
    stem = f"{base}/secure/useravatar?"
    return {
        "48x48": stem + tail,
        "24x24": f"{stem}size=small&{tail}",
        "16x16": f"{stem}size=xsmall&{tail}",
        "32x32": f"{stem}size=medium&{tail}",
    }


def _cloud_avatars(user: User) -> dict[str, str]:
    initials = "".join(part[:1] for part in user.display_name.split()[:2]).upper() or "U"
    stem = f"{CLOUD_AVATAR_BASE}/initials/{_quote(initials)}-{user.uid % 6}.png"
    return {f"{s}x{s}": f"{stem}?size={s}&s={s}" for s in (48, 24, 16, 32)}


def _put_optional(body: Json, name: str, value: str | None) -> None:
    # Privacy settings hide these on Cloud; the fake omits them when unset on both flavours.
    if value is not None:
        body[name] = value


def dc_user(user: User, base: str) -> Json:
    body: Json = {
        "self": f"{base}/rest/api/2/user?username={_quote(user.name)}",
        "key": user.key,
        "name": user.name,
    }
    _put_optional(body, "emailAddress", user.email)
    body["avatarUrls"] = _dc_avatars(base, user.key)
    body["displayName"] = user.display_name
    body["active"] = user.active
    body["deleted"] = False
    _put_optional(body, "timeZone", user.time_zone)
    _put_optional(body, "locale", user.locale)
    return body


def cloud_user(user: User, base: str) -> Json:
    body: Json = {
        "self": f"{base}/rest/api/3/user?accountId={_quote(user.account_id)}",
        "accountId": user.account_id,
        "accountType": user.account_type,
    }
    _put_optional(body, "emailAddress", user.email)
    body["avatarUrls"] = _cloud_avatars(user)
    body["displayName"] = user.display_name
    body["active"] = user.active
    _put_optional(body, "timeZone", user.time_zone)
    _put_optional(body, "locale", user.locale)
    return body


def groups_json(groups: list[Group], cloud: bool, base: str) -> Json:
    items: list[Json] = []
    for group in groups:
        if cloud:
            self_url = f"{base}/rest/api/3/group?groupId={group.group_id}"
            items.append({"name": group.name, "groupId": group.group_id, "self": self_url})
        else:
            self_url = f"{base}/rest/api/2/group?groupname={_quote(group.name)}"
            items.append({"name": group.name, "self": self_url})
    return {"size": len(items), "items": items}


def encode_cursor(uid: int) -> str:
    return base64.urlsafe_b64encode(f"after:{uid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The uid the previous page ended with; -1 starts from the beginning."""
    if not cursor:
        return -1
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "after":
            raise ValueError(raw)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HttpError(400, "The cursor is invalid") from None
