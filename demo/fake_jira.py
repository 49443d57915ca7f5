"""A fake Jira that is a real HTTP server, speaking Jira's documented user JSON.

What it fakes: the read-only user endpoints of Jira Data Center (REST v2) and Jira Cloud
(REST v3): ``serverInfo``, ``myself`` and ``mypermissions`` (for the service account and
the people of ``accounts``, who sign in with their own passwords; see ``demo/jira_accounts.py``), one user (``expand=groups``), the DC user search,
the DC cursor list ``/user/list``, the Cloud ``/users/search`` page, and group members
for both. Errors use Jira's body ``{"errorMessages": [...], "errors": {}}`` (Cloud adds
``"status"``). Also the admin webhook resource, with signed deliveries when users are
added, changed or removed through the Python API (``demo/fake_webhooks.py``).

The DC search behaves as Jira's (``UserMatcherPredicate``, ``UserCachingComparator``):
a user matches when the lower-cased query starts their username, their display name or
one of its space-separated words, or their e-mail address; matches come in display-name
order, and only the first ``search_cap`` are ever returned, with no total: 1,000 by
default, as Jira before 10 (JRASERVER-65089); ``search_cap=100`` with
``has_user_list=False`` is Data Center 10.0-10.2, where ``startAt + maxResults`` is cut
at 100 (``startAt=98&maxResults=20`` gives 2 users, ``startAt=100`` none: JRASERVER-78520)
and there is no ``/user/list`` yet.

Why a real server rather than a mocked transport: integration tests fake nothing else, so
the HTTP client, its timeouts, retries and paging run exactly as against production; and
the quick start needs something a user can point the product at. Tests steer it through
the Python API: add (``add_user``, ``add_users`` for large hand-built directories),
rename or remove users, hide users from every listing while a direct look-up still finds
them (``hidden``), make Cloud pages come back short (``cloud_short_pages``), inject
failures (``fail_next``) or latency (``set_delay``), change the directory between two
pages of a listing (``after_requests``), and read ``request_log``.

Design: all state sits behind one lock; each request copies what it needs under the lock
and encodes JSON outside it. Sorted views and the search's prefix index are rebuilt
lazily, once per change of the directory, so a 100,000-user directory pages in O(page
size) per request and a search costs O(log n + matches). Only the standard library is
used.

Run it: ``python -m demo.fake_jira --flavor cloud --users 40``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import hmac
import json
import logging
import random
import re
import signal
import socket
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from demo import fake_webhooks
from demo.fake_webhooks import DirectoryChanges, FakeWebhooks
from demo.jira_accounts import Account, Accounts

log = logging.getLogger(__name__)

Json = dict[str, Any]

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
FLAVORS = ("datacenter", "cloud")
DC_VERSION = (10, 3, 1)
CLOUD_VERSION = (1001, 0, 0)
# The first DC key handed out: Jira 8+ keys look like JIRAUSER10000.
FIRST_KEY_NUMBER = 10000
CLOUD_ID_PREFIX = "5b10a2844c20165700ede"
# Real Cloud still has some old-style ids; the stand-in admin uses one so clients that
# assume 24 hex digits notice.
GLOBAL_PERMISSIONS = {"ADMINISTER": 0, "SYSTEM_ADMIN": 44}
ADMIN_ACCOUNT_ID = "557058:5f8b1c2e-6d3a-4f0e-9a7b-2c4d8e1f0a99"
CLOUD_AVATAR_BASE = "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net"
_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")
DC_LIST_DEFAULT = 2000
GROUP_PAGE_CAP = 50
CLOUD_PAGE_CAP = 1000
USER_FIELDS = frozenset(
    {
        "name",
        "display_name",
        "email",
        "active",
        "key",
        "account_id",
        "account_type",
        "time_zone",
        "locale",
        "groups",
        "hidden",
    }
)


class _HttpError(Exception):
    """An endpoint's refusal: becomes a Jira error body with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _User:
    uid: int  # creation order; also the position the DC cursor resumes after
    name: str
    key: str
    account_id: str
    display_name: str
    email: str | None
    active: bool = True
    account_type: str = "atlassian"
    time_zone: str | None = None
    locale: str | None = None
    groups: set[str] = field(default_factory=set)  # lowercased group names
    # Left out of every listing (search, list, group members) but served by a direct
    # look-up, as Jira does for users the service account may not browse.
    hidden: bool = False
    # Lowercased copies, so searches and sorts do not lower() 100,000 strings per request.
    name_l: str = ""
    display_l: str = ""
    email_l: str = ""

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        self.name_l = self.name.lower()
        self.display_l = self.display_name.lower()
        self.email_l = (self.email or "").lower()


@dataclass(slots=True)
class _Group:
    name: str
    group_id: str
    members: set[int] = field(default_factory=set)  # user uids


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    retry_after: int | None
    path_contains: str


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Callable[[_Query, str], Any]
    needs_auth: bool = True


class _Query:
    """Typed access to a query string; bad values are Jira's 400."""

    def __init__(self, raw: str) -> None:
        self._params = parse_qs(raw, keep_blank_values=True)

    def text(self, name: str) -> str | None:
        values = self._params.get(name)
        return values[0] if values else None

    def integer(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _HttpError(400, f"The '{name}' parameter must be a number") from None
        if value < 0:
            raise _HttpError(400, f"The '{name}' parameter must not be negative")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        if raw.lower() not in ("true", "false"):
            raise _HttpError(400, f"The '{name}' parameter must be true or false")
        return raw.lower() == "true"

    def expands(self, what: str) -> bool:
        return what in (self.text("expand") or "").split(",")


class _Directory:
    """Users, groups and their indexes. Not threadsafe: FakeJira holds its lock."""

    def __init__(self) -> None:
        self.users: dict[int, _User] = {}  # insertion order == creation order
        self.by_key: dict[str, _User] = {}
        self.by_name: dict[str, _User] = {}  # lowercased username: lookups ignore case
        self.by_account: dict[str, _User] = {}
        self.groups: dict[str, _Group] = {}  # lowercased name: Jira ignores case
        self.by_group_id: dict[str, _Group] = {}
        self.counter = 0
        self.version = 0  # bumped on every change; views remember what they were built from
        self._views_version = -1
        self._by_creation: list[_User] = []
        self._creation_uids: list[int] = []
        self._member_views: dict[str, tuple[int, list[_User], list[_User]]] = {}
        # The DC search's index, rebuilt on its own counter: display-name changes (which
        # the bench makes during runs) do not disturb the listings' views.
        self.search_version = 0
        self._index_version = -1
        self._search_order: list[_User] = []
        self._rank: dict[int, int] = {}
        self._index_keys: list[str] = []
        self._index_uids: list[int] = []

    # -- changes -------------------------------------------------------------------------

    def add(self, name: str, key: str | None, account_id: str | None, **attrs: Any) -> _User:
        n = self.counter
        while not self._generated_ids_free(n, key is None, account_id is None):
            n += 1  # a test gave someone this id explicitly
        key = key or f"JIRAUSER{FIRST_KEY_NUMBER + n}"
        account_id = account_id or f"{CLOUD_ID_PREFIX}{n:03x}"
        self._check_free(name, key, account_id)
        self.counter = n + 1
        user = _User(uid=n, name=name, key=key, account_id=account_id, **attrs)
        self.users[user.uid] = user
        self._index(user)
        self.version += 1
        self.search_version += 1
        return user

    def update(self, user: _User, fields: dict[str, Any]) -> None:
        unknown = set(fields) - USER_FIELDS
        if unknown:
            raise TypeError(f"unknown user fields: {sorted(unknown)}")
        groups = fields.pop("groups", None)
        if "display_name" in fields and fields["display_name"] is None:
            fields["display_name"] = fields.get("name", user.name)  # as add_user defaults it
        self._unindex(user)  # so a user may keep its own name, key or accountId
        try:
            self._check_free(fields.get("name"), fields.get("key"), fields.get("account_id"))
            for attr, value in fields.items():
                setattr(user, attr, value)
            user.refresh()
        finally:
            self._index(user)
        if groups is not None:
            self.set_groups(user, groups)
        # Views hold the user objects themselves: only what orders or filters them
        # (username, active) needs them rebuilt. A rebuild of 100,000 users takes ~150 ms.
        if {"name", "active", "hidden"} & fields.keys():
            self.version += 1
        if {"name", "display_name", "email", "active", "hidden"} & fields.keys():
            self.search_version += 1

    def remove(self, user: _User) -> None:
        self.set_groups(user, [])
        self._unindex(user)
        del self.users[user.uid]
        self.version += 1
        self.search_version += 1

    def set_groups(self, user: _User, names: Iterable[str]) -> None:
        for lowered in list(user.groups):
            self.groups[lowered].members.discard(user.uid)
        user.groups.clear()
        for name in names:
            self.join(self.ensure_group(name), user)
        self.version += 1

    def ensure_group(self, name: str) -> _Group:
        group = self.groups.get(name.lower())
        if group is None:
            # uuid5 keeps group ids stable across runs, like Cloud's stable groupIds.
            group = _Group(name=name, group_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name.lower())))
            self.groups[name.lower()] = group
            self.by_group_id[group.group_id] = group
            self.version += 1
        return group

    def join(self, group: _Group, user: _User) -> None:
        group.members.add(user.uid)
        user.groups.add(group.name.lower())
        self.version += 1

    # -- lookups -------------------------------------------------------------------------

    def resolve(self, ident: str) -> _User:
        """Key first, then username, then accountId: keys are the stable identity."""
        user = (
            self.by_key.get(ident) or self.by_name.get(ident.lower()) or self.by_account.get(ident)
        )
        if user is None:
            raise KeyError(f"no user {ident!r} in the fake Jira")
        return user

    def by_creation(self) -> tuple[list[_User], list[int]]:
        self._refresh_views()
        return self._by_creation, self._creation_uids

    def search(self, needle: str, active: bool, inactive: bool, limit: int) -> list[_User]:
        """DC's user search: the first ``limit`` matches in Jira's order (display name,
        then username). A user matches when the lower-cased query starts their username,
        their display name or one of its words, or their e-mail address."""
        if not needle or limit <= 0:
            return []
        self._refresh_index()

        def wanted(user: _User) -> bool:
            return active if user.active else inactive

        if needle == ".":  # Jira's customary "everyone"
            found = []
            for user in self._search_order:
                if wanted(user):
                    found.append(user)
                    if len(found) >= limit:
                        break
            return found
        keys, uids = self._index_keys, self._index_uids
        candidates: set[int] = set()
        at = bisect.bisect_left(keys, needle)
        while at < len(keys) and keys[at].startswith(needle):
            candidates.add(uids[at])
            at += 1
        matches = [
            self.users[uid]
            for uid in candidates
            if wanted(self.users[uid]) and _jira_matches(self.users[uid], needle)
        ]
        matches.sort(key=lambda u: self._rank[u.uid])
        return matches[:limit]

    def members(self, group: _Group, include_inactive: bool) -> list[_User]:
        cached = self._member_views.get(group.group_id)
        if cached is None or cached[0] != self.version:
            everyone = sorted(
                (self.users[uid] for uid in group.members if not self.users[uid].hidden),
                key=lambda u: (u.name_l, u.name),
            )
            cached = (self.version, everyone, [u for u in everyone if u.active])
            self._member_views[group.group_id] = cached
        return cached[1] if include_inactive else cached[2]

    def group_list(self, user: _User) -> list[_Group]:
        return sorted((self.groups[g] for g in user.groups), key=lambda g: g.name.lower())

    # -- internals -----------------------------------------------------------------------

    def _generated_ids_free(self, n: int, need_key: bool, need_account_id: bool) -> bool:
        key_free = not need_key or f"JIRAUSER{FIRST_KEY_NUMBER + n}" not in self.by_key
        account_free = not need_account_id or f"{CLOUD_ID_PREFIX}{n:03x}" not in self.by_account
        return key_free and account_free

    def _check_free(self, name: str | None, key: str | None, account_id: str | None) -> None:
        if name is not None and name.lower() in self.by_name:
            raise ValueError(f"username {name!r} is taken")
        if key is not None and key in self.by_key:
            raise ValueError(f"key {key!r} is taken")
        if account_id is not None and account_id in self.by_account:
            raise ValueError(f"accountId {account_id!r} is taken")

    def _index(self, user: _User) -> None:
        self.by_key[user.key] = user
        self.by_name[user.name_l] = user
        self.by_account[user.account_id] = user

    def _unindex(self, user: _User) -> None:
        self.by_key.pop(user.key, None)
        self.by_name.pop(user.name_l, None)
        self.by_account.pop(user.account_id, None)

    def _refresh_index(self) -> None:
        if self._index_version == self.search_version:
            return
        listed = [u for u in self.users.values() if not u.hidden]
        # UserCachingComparator: display name, then username, ignoring case.
        self._search_order = sorted(listed, key=lambda u: (u.display_l, u.name_l, u.name))
        self._rank = {u.uid: i for i, u in enumerate(self._search_order)}
        entries: list[tuple[str, int]] = []
        for user in listed:
            entries.append((user.name_l, user.uid))
            entries.append((user.display_l, user.uid))
            entries.extend((word.lower(), user.uid) for word in _display_words(user)[1:])
            if user.email_l:
                entries.append((user.email_l, user.uid))
        entries.sort()
        self._index_keys = [k for k, _ in entries]
        self._index_uids = [u for _, u in entries]
        self._index_version = self.search_version

    def _refresh_views(self) -> None:
        if self._views_version == self.version:
            return
        self._by_creation = list(self.users.values())
        self._creation_uids = [u.uid for u in self._by_creation]
        self._views_version = self.version


def _display_words(user: _User) -> list[str]:
    # Jira splits display names on spaces only, dropping empty words.
    return [word for word in user.display_name.split(" ") if word]


def _jira_starts(text: str, query: str) -> bool:
    # As Jira compares: the text's first len(query) characters, lower-cased, equal the
    # lower-cased query. (So a name starting with "İ", which lower-cases to two
    # characters, is never matched by a search on its start.)
    return len(query) <= len(text) and text[: len(query)].lower() == query


def _jira_matches(user: _User, query: str) -> bool:
    """Jira's UserMatcherPredicate: username, e-mail, display name, or any later word."""
    return (
        _jira_starts(user.name, query)
        or (bool(user.email) and _jira_starts(user.email or "", query))
        or _jira_starts(user.display_name, query)
        or any(_jira_starts(word, query) for word in _display_words(user)[1:])
    )


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


def _cloud_avatars(user: _User) -> dict[str, str]:
    initials = "".join(part[:1] for part in user.display_name.split()[:2]).upper() or "U"
    stem = f"{CLOUD_AVATAR_BASE}/initials/{_quote(initials)}-{user.uid % 6}.png"
    return {f"{s}x{s}": f"{stem}?size={s}&s={s}" for s in (48, 24, 16, 32)}


def _put_optional(body: Json, name: str, value: str | None) -> None:
    # Privacy settings hide these on Cloud; the fake omits them when unset on both flavours.
    if value is not None:
        body[name] = value


def _dc_user(user: _User, base: str) -> Json:
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


def _cloud_user(user: _User, base: str) -> Json:
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


def _groups_json(groups: list[_Group], cloud: bool, base: str) -> Json:
    items: list[Json] = []
    for group in groups:
        if cloud:
            self_url = f"{base}/rest/api/3/group?groupId={group.group_id}"
            items.append({"name": group.name, "groupId": group.group_id, "self": self_url})
        else:
            self_url = f"{base}/rest/api/2/group?groupname={_quote(group.name)}"
            items.append({"name": group.name, "self": self_url})
    return {"size": len(items), "items": items}


def _encode_cursor(uid: int) -> str:
    return base64.urlsafe_b64encode(f"after:{uid}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> int:
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
        raise _HttpError(400, "The cursor is invalid") from None


# -- the fake ---------------------------------------------------------------------------------


class FakeJira:
    """A Jira Data Center or Cloud stand-in on a real socket; see the module docstring."""

    def __init__(
        self,
        *,
        flavor: str = "datacenter",
        username: str | None = "admin",
        password: str = "secret",
        has_user_list: bool = True,
        search_cap: int = 1000,
        max_page: int = 1000,
        cloud_short_pages: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.flavor = flavor
        self.cloud = flavor == "cloud"
        self._username = username
        self._password = password
        self._has_user_list = has_user_list
        self._search_cap = search_cap
        self._max_page = max_page
        self._cloud_short_pages = cloud_short_pages
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._dir = _Directory()
        self._faults: list[_Fault] = []
        self._delay = 0.0
        self._path_delays: dict[str, float] = {}
        # (matching requests still to answer first, path fragment, what then happens)
        self._after: list[tuple[int, str, Callable[[], None]]] = []
        self._server: _Server | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self.request_log: list[tuple[str, str]] = []
        self.faults_served = 0
        self._routes = self._build_routes()
        self.webhooks = FakeWebhooks(cloud=self.cloud, base_url=self._base)
        # People who sign in with their own credentials (the console's administrators);
        # who is calling is noted per request thread, for /myself and /mypermissions.
        self.accounts = Accounts()
        self._caller = threading.local()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fake Jira is not started")
        return self._url

    def start(self) -> FakeJira:
        if self._server is not None:
            raise RuntimeError("the fake Jira is already started")
        self._server = _Server((self._host, self._port), self)
        host, port = self._server.server_address[:2]
        self._url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-jira-{self.flavor}",
            daemon=True,
        )
        self._thread.start()
        log.debug("fake Jira (%s) listening on %s", self.flavor, self.url)
        return self

    def stop(self) -> None:
        self.webhooks.stop()
        server, self._server, self._url = self._server, None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeJira:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- directory -----------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        active: bool = True,
        key: str | None = None,
        account_id: str | None = None,
        account_type: str = "atlassian",
        time_zone: str | None = "Europe/Berlin",
        locale: str | None = "en_US",
        groups: list[str] | None = None,
        hidden: bool = False,
    ) -> Json:
        """Add a user; return its JSON as served. ``name`` is also the Cloud test handle.

        A ``hidden`` user is left out of every listing but found by a direct look-up.
        """
        with self._lock:
            user = self._dir.add(
                name,
                key,
                account_id,
                display_name=display_name or name,
                email=email,
                active=active,
                account_type=account_type,
                time_zone=time_zone,
                locale=locale,
                hidden=hidden,
            )
            self._dir.set_groups(user, groups or [])
            created = self._user_json(user)
        self.webhooks.user_event("user_created", created)
        return created

    def add_users(self, people: Iterable[dict[str, Any]]) -> None:
        """Add many users at once (a large hand-built directory): each dict holds
        ``add_user``'s arguments, ``name`` required. No webhook deliveries."""
        with self._lock:
            for person in people:
                attrs = dict(person)
                name, groups = attrs.pop("name"), attrs.pop("groups", [])
                key, account_id = attrs.pop("key", None), attrs.pop("account_id", None)
                attrs["display_name"] = attrs.get("display_name") or name
                attrs.setdefault("email", None)
                user = self._dir.add(name, key, account_id, **attrs)
                if groups:
                    self._dir.set_groups(user, groups)

    def update_user(self, ident: str, **fields: Any) -> None:
        """Change a user found by key, username or accountId (see ``add_user`` for fields)."""
        with self._lock:
            user = self._dir.resolve(ident)
            self._dir.update(user, dict(fields))
            updated = self._user_json(user)
        self.webhooks.user_event("user_updated", updated)

    def remove_user(self, ident: str) -> None:
        with self._lock:
            user = self._dir.resolve(ident)
            removed = self._user_json(user)
            self._dir.remove(user)
        self.webhooks.user_event("user_deleted", removed)

    def add_to_group(self, group: str, *idents: str) -> None:
        with self._lock:
            target = self._dir.ensure_group(group)
            for ident in idents:
                self._dir.join(target, self._dir.resolve(ident))

    def user_json(self, ident: str, *, expand_groups: bool = False) -> Json:
        """The JSON ``GET /user`` would serve for this user (handy for test expectations)."""
        with self._lock:
            return self._user_json(self._dir.resolve(ident), expand_groups)

    def users(self) -> list[Json]:
        """Every account's JSON, in creation order."""
        with self._lock:
            return self._users_json(self._dir.by_creation()[0])

    @property
    def user_count(self) -> int:
        with self._lock:
            return len(self._dir.users)

    def add_sample_users(
        self,
        n: int,
        *,
        seed: int = 1,
        inactive_every: int = 0,
        app_accounts: int = 0,
        groups: dict[str, int] | None = None,
        native_every: int = 0,
    ) -> None:
        """Add a deterministic, realistic directory: ``n`` people, then app/customer accounts.

        With ``native_every=k``, every k-th person's username keeps the letters of their
        name (``émilie.brown``, ``łukasz.nowak``, ``王芳``); the e-mail stays ASCII.

        Counting people from 1: person k, 2k, ... is inactive for ``inactive_every=k``, and
        person 1, k+1, 2k+1, ... joins each group of ``groups={name: k}`` (offset so that
        groups are never empty, nor all inactive when k is a multiple of ``inactive_every``).
        0 disables either.
        """
        with self._lock:
            taken = set(self._dir.by_name)
            people = _sample_people(n, random.Random(seed), taken, native_every)
            accounts = _sample_accounts(app_accounts, taken)
            member_of = [(self._dir.ensure_group(g), k) for g, k in (groups or {}).items()]
            for i, attrs in enumerate(people, start=1):
                attrs["active"] = not (inactive_every and i % inactive_every == 0)
                user = self._dir.add(key=None, account_id=None, **attrs)
                for group, every in member_of:
                    if every and (i - 1) % every == 0:
                        self._dir.join(group, user)
            for attrs in accounts:
                self._dir.add(key=None, account_id=None, **attrs)

    # -- test controls -------------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        *,
        status: int = 503,
        retry_after: int | None = None,
        path_contains: str = "",
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (queued in order)."""
        if count > 0:
            with self._lock:
                self._faults.append(_Fault(count, status, retry_after, path_contains))

    def set_delay(self, seconds: float, *, path_contains: str = "") -> None:
        """Answer requests whose target contains ``path_contains`` (all: "") that much later."""
        with self._lock:
            if path_contains:
                self._path_delays[path_contains] = seconds
            else:
                self._delay = seconds

    def request_count(self, path_contains: str = "") -> int:
        with self._lock:
            return sum(1 for _, path in self.request_log if path_contains in path)

    def after_requests(
        self, count: int, action: Callable[[], None], *, path_contains: str = ""
    ) -> None:
        """Call ``action`` once the next ``count`` requests whose target contains
        ``path_contains`` have been answered, before the client reads the last answer:
        e.g. remove users between two pages of a listing."""
        with self._lock:
            self._after.append((count, path_contains, action))

    def _due_actions(self, target: str) -> list[Callable[[], None]]:
        due, waiting = [], []
        for count, fragment, action in self._after:
            if fragment in target:
                count -= 1
            if count <= 0:
                due.append(action)
            else:
                waiting.append((count, fragment, action))
        self._after = waiting
        return due

    # -- request handling (called from server threads) -----------------------------------

    def respond(
        self, method: str, target: str, authorization: str | None, body: bytes = b""
    ) -> tuple[int, Any, dict[str, str]]:
        """Status, JSON body and extra headers for one request."""
        answer = self._respond(method, target, authorization, body)
        with self._lock:
            due = self._due_actions(target)
        for action in due:  # outside the lock: actions change the directory through it
            action()
        return answer

    def _respond(
        self, method: str, target: str, authorization: str | None, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.request_log.append((method, target))
            delay = self._delay + sum(d for p, d in self._path_delays.items() if p in target)
            fault = self._take_fault(target)
        if delay > 0:
            time.sleep(delay)  # outside the lock: slow requests must not serialise others
        if fault is not None:
            return self._fault_response(fault)
        parts = urlsplit(target)
        route = self._routes.get(parts.path.rstrip("/") or "/")
        authorized = self._check_auth(authorization)
        if parts.path.startswith(fake_webhooks.RESOURCE):
            return self._webhook_resource(method, parts.path, authorized, body)
        # Like Jira, wrong credentials fail even where anonymous access would be fine.
        if authorized is False or (authorized is None and route is not None and route.needs_auth):
            return self._unauthorized()
        if route is None:
            return self._error(404, f"No Jira REST resource at {parts.path}")
        if method != "GET":
            status, body, headers = self._error(405, f"{method} is not allowed here")
            headers["Allow"] = "GET"
            return status, body, headers
        try:
            return 200, route.handler(_Query(parts.query), parts.path.rstrip("/")), {}
        except _HttpError as exc:
            return self._error(exc.status, exc.message)

    def _webhook_resource(
        self, method: str, path: str, authorized: bool | None, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """The admin webhook REST resource: kept apart from the read-only user API."""
        if not authorized:
            return self._unauthorized()
        return self.webhooks.respond(method, path.rstrip("/"), body, self._error)

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path_contains in target:
                self.faults_served += 1
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: _Fault) -> tuple[int, Any, dict[str, str]]:
        status, body, headers = self._error(fault.status, _fault_message(fault.status))
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.status == 429:
            headers["X-RateLimit-Remaining"] = "0"
        return status, body, headers

    def _check_auth(self, header: str | None) -> bool | None:
        """None without credentials, else whether they are right (the service account's,
        or a person's of ``accounts``: then the caller is noted for this request)."""
        self._caller.account, self._caller.captcha = None, False
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if self._service_account(scheme, credentials):
            return True
        account: Account | None = None
        if scheme.lower() == "bearer":
            account = self.accounts.by_token(credentials)
        elif scheme.lower() == "basic":
            try:
                login, _, secret = base64.b64decode(credentials).decode().partition(":")
            except ValueError:
                return False
            outcome, found = self.accounts.check(login, secret)
            self._caller.captcha = outcome == "captcha"
            account = found if outcome == "ok" else None
        self._caller.account = account
        return account is not None

    def _service_account(self, scheme: str, credentials: str) -> bool:
        if self._username is None:
            return scheme.lower() == "bearer" and hmac.compare_digest(
                credentials.encode(), self._password.encode()
            )
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except ValueError:  # bad base64 or not UTF-8
            return False
        # Jira usernames (and Cloud e-mails) are case-insensitive; tokens are not.
        return user.lower() == self._username.lower() and hmac.compare_digest(
            password.encode(), self._password.encode()
        )

    def _unauthorized(self) -> tuple[int, Any, dict[str, str]]:
        status, body, headers = self._error(
            401, "You are not authenticated. Authentication required to perform this operation."
        )
        scheme = "Basic" if self._username is not None else "Bearer"
        headers["WWW-Authenticate"] = f'{scheme} realm="Jira"'
        if not self.cloud and getattr(self._caller, "captcha", False):
            # Jira's Seraph after failed sign-ins: the password is not even checked.
            headers["X-Seraph-LoginReason"] = "AUTHENTICATION_DENIED"
            headers["X-Authentication-Denied-Reason"] = (
                f"CAPTCHA_CHALLENGE; login-url={self._base()}/login.jsp"
            )
        elif not self.cloud:
            headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
        return status, body, headers

    def _error(self, status: int, message: str) -> tuple[int, Any, dict[str, str]]:
        body: Json = {"errorMessages": [message], "errors": {}}
        if self.cloud:
            body["status"] = status
        return status, body, {}

    # -- endpoints -----------------------------------------------------------------------

    def _build_routes(self) -> dict[str, _Route]:
        if not self.cloud:
            routes = {
                "/rest/api/2/serverInfo": _Route(self._ep_server_info, needs_auth=False),
                "/rest/api/2/myself": _Route(self._ep_myself),
                "/rest/api/2/mypermissions": _Route(self._ep_mypermissions),
                "/rest/api/2/user": _Route(self._ep_dc_user),
                "/rest/api/2/user/search": _Route(self._ep_dc_search),
                "/rest/api/2/group/member": _Route(self._ep_group_member),
            }
            if self._has_user_list:  # older DC answers 404 here
                routes["/rest/api/2/user/list"] = _Route(self._ep_dc_list)
            return routes
        routes = {}
        for api in ("/rest/api/2", "/rest/api/3"):  # Cloud serves both versions alike
            routes[f"{api}/serverInfo"] = _Route(self._ep_server_info, needs_auth=False)
            routes[f"{api}/myself"] = _Route(self._ep_myself)
            routes[f"{api}/mypermissions"] = _Route(self._ep_mypermissions)
            routes[f"{api}/user"] = _Route(self._ep_cloud_user)
            routes[f"{api}/users/search"] = _Route(self._ep_cloud_users)
            routes[f"{api}/group/member"] = _Route(self._ep_group_member)
        return routes

    def _ep_server_info(self, query: _Query, path: str) -> Json:
        version = CLOUD_VERSION if self.cloud else DC_VERSION
        major, minor, patch = version
        return {
            "baseUrl": self._base(),
            "version": "1001.0.0-SNAPSHOT" if self.cloud else f"{major}.{minor}.{patch}",
            "versionNumbers": list(version),
            "deploymentType": "Cloud" if self.cloud else "Server",
            "buildNumber": 100282 if self.cloud else major * 100000 + minor * 1000 + patch,
            "buildDate": "2025-01-15T00:00:00.000+0000",
            "serverTime": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime()),
            "serverTitle": "Jira",
        }

    def _ep_myself(self, query: _Query, path: str) -> Json:
        account: Account | None = getattr(self._caller, "account", None)
        with self._lock:
            if account is None:
                return self._user_json(self._admin(), query.expands("groups"))
            user = self._dir.by_name.get(account.login.lower())
            if user is None:
                user = _User(
                    uid=-1,
                    name=account.login,
                    key=account.login,
                    account_id=account.account_id,
                    display_name=account.display_name,
                    email=account.login if "@" in account.login else None,
                    time_zone="Europe/Berlin",
                    locale="en_US",
                )
            return self._user_json(user, query.expands("groups"))

    def _ep_mypermissions(self, query: _Query, path: str) -> Json:
        """The caller's global permissions, as Jira answers them (Cloud requires the
        ``permissions`` parameter; the service account administers)."""
        wanted = [k for k in (query.text("permissions") or "").split(",") if k]
        if not wanted and self.cloud:
            raise _HttpError(400, "The 'permissions' query parameter is required.")
        unknown = [k for k in wanted if k not in GLOBAL_PERMISSIONS]
        if unknown:
            raise _HttpError(400, f"Could not find permission {unknown[0]}")
        account: Account | None = getattr(self._caller, "account", None)
        administrator = account.administrator if account is not None else True
        return {
            "permissions": {
                key: {
                    "id": str(GLOBAL_PERMISSIONS[key]),
                    "key": key,
                    "name": key.replace("_", " ").title(),
                    "type": "GLOBAL",
                    "description": f"The {key} global permission",
                    "havePermission": administrator,
                }
                for key in wanted or list(GLOBAL_PERMISSIONS)
            }
        }

    def _ep_dc_user(self, query: _Query, path: str) -> Json:
        username, key = query.text("username"), query.text("key")
        if (username is None) == (key is None):
            raise _HttpError(400, "Either the username or the key query parameter must be given")
        with self._lock:
            if key is not None:
                user = self._dir.by_key.get(key)
                missing = f"The user with the key '{key}' does not exist"
            else:
                user = self._dir.by_name.get((username or "").lower())
                missing = f"The user named '{username}' does not exist"
            if user is None:
                raise _HttpError(404, missing)
            return self._user_json(user, query.expands("groups"))

    def _ep_cloud_user(self, query: _Query, path: str) -> Json:
        account_id = query.text("accountId")
        if not account_id:
            for gone in ("username", "key"):
                if query.text(gone) is not None:
                    raise _HttpError(
                        400, f"The query parameter '{gone}' is not supported in GDPR strict mode."
                    )
            raise _HttpError(400, "The query parameter 'accountId' is required")
        with self._lock:
            user = self._dir.by_account.get(account_id)
            if user is None:
                raise _HttpError(
                    404, "Specified user does not exist or you do not have required permissions"
                )
            return self._user_json(user, query.expands("groups"))

    def _ep_dc_search(self, query: _Query, path: str) -> list[Json]:
        needle = query.text("username")
        if needle is None:
            raise _HttpError(400, "The username query parameter was not provided")
        start, size = self._paging(query, default=50, cap=self._max_page)
        active = query.boolean("includeActive", True)
        inactive = query.boolean("includeInactive", False)
        # Only the first `search_cap` matches are reachable, whatever startAt says.
        limit = min(self._search_cap, start + size)
        with self._lock:
            found = self._dir.search(needle.lower(), active, inactive, limit)
            return self._users_json(found[start:])

    def _ep_dc_list(self, query: _Query, path: str) -> Json:
        size = min(query.integer("maxResults", DC_LIST_DEFAULT), self._max_page)
        if size < 1:
            raise _HttpError(400, "The 'maxResults' parameter must be at least 1")
        after = _decode_cursor(query.text("cursor"))
        with self._lock:
            users, uids = self._dir.by_creation()
            # Resume after the last uid served, so removals between pages skip no one.
            start = bisect.bisect_right(uids, after)
            page = users[start : start + size]
            is_last = start + size >= len(users)
            # Hidden users are dropped after the page is cut: a page can come back short.
            shown = [u for u in page if not u.hidden]
            body: Json = {"values": self._users_json(shown), "isLast": is_last}
        if not is_last:
            body["nextCursor"] = _encode_cursor(page[-1].uid)
        return body

    def _ep_cloud_users(self, query: _Query, path: str) -> list[Json]:
        start, size = self._paging(query, default=50, cap=min(self._max_page, CLOUD_PAGE_CAP))
        with self._lock:
            users, _ = self._dir.by_creation()
            # Like Cloud, accounts the caller may not see are dropped after the page is
            # cut, so a page comes back short while more follow; and with
            # ``cloud_short_pages`` a page also loses its last few accounts (they come
            # first on a page that starts right after what was served).
            shown = [u for u in users[start : start + size] if not u.hidden]
            if self._cloud_short_pages and len(shown) > self._cloud_short_pages:
                shown = shown[: -self._cloud_short_pages]
            return self._users_json(shown)

    def _ep_group_member(self, query: _Query, path: str) -> Json:
        start, size = self._paging(query, default=50, cap=GROUP_PAGE_CAP)
        include_inactive = query.boolean("includeInactiveUsers", False)
        with self._lock:
            group, ident = self._find_group(query)
            members = self._dir.members(group, include_inactive)
            values = self._users_json(members[start : start + size])
        total = len(members)
        is_last = start + size >= total

        def page_url(at: int) -> str:
            params = {
                **ident,
                "includeInactiveUsers": str(include_inactive).lower(),
                "startAt": at,
                "maxResults": size,
            }
            return f"{self._base()}{path}?{urlencode(params)}"

        body: Json = {"self": page_url(start)}
        if not is_last:
            body["nextPage"] = page_url(start + size)
        body.update(maxResults=size, startAt=start, total=total, isLast=is_last, values=values)
        return body

    # -- endpoint helpers (those taking no lock expect the caller to hold it) -------------

    def _paging(self, query: _Query, *, default: int, cap: int) -> tuple[int, int]:
        return query.integer("startAt", 0), min(query.integer("maxResults", default), cap)

    def _find_group(self, query: _Query) -> tuple[_Group, dict[str, str]]:
        group_id = query.text("groupId") if self.cloud else None
        if group_id:
            group = self._dir.by_group_id.get(group_id)
            if group is None:
                raise _HttpError(404, f"No group with groupId '{group_id}'")
            return group, {"groupId": group_id}
        name = query.text("groupname")
        if not name:
            raise _HttpError(
                400, "You must specify a group name" + (" or ID" if self.cloud else "")
            )
        group = self._dir.groups.get(name.lower())
        if group is None:
            raise _HttpError(404, f"Group with name '{name}' does not exist.")
        return group, {"groupname": name}

    def _admin(self) -> _User:
        """The directory user we log in as, or a stand-in outside the directory.

        The stand-in keeps sample directories exactly the size tests ask for.
        """
        login = (self._username or "admin").lower()
        user = self._dir.by_name.get(login)
        if user is None and self.cloud:
            user = next((u for u in self._dir.users.values() if u.email_l == login), None)
        return user or _User(
            uid=-1,
            name=self._username or "admin",
            key="admin",
            account_id=ADMIN_ACCOUNT_ID,
            display_name="Administrator",
            email="admin@example.com",
            time_zone="Europe/Berlin",
            locale="en_US",
        )

    def _base(self) -> str:
        # Users added before start() get the configured address in their JSON; requests
        # still running after stop() must not fail on the missing URL.
        return self._url or f"http://{self._host}:{self._port}"

    def _users_json(self, users: Iterable[_User]) -> list[Json]:
        base, render = self._base(), _cloud_user if self.cloud else _dc_user
        return [render(user, base) for user in users]

    def _user_json(self, user: _User, with_groups: bool = False) -> Json:
        base = self._base()
        body = _cloud_user(user, base) if self.cloud else _dc_user(user, base)
        if with_groups:
            body["groups"] = _groups_json(self._dir.group_list(user), self.cloud, base)
        return body


def _fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit exceeded."
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


# -- HTTP plumbing ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the test process alive

    def __init__(self, address: tuple[str, int], fake: FakeJira) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up mid-response are normal in tests: no stderr noise.
        log.debug("connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Drop keep-alive connections so a stopped fake really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # the client may have closed it already
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a 100-page scan should not reconnect 100 times
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "FakeJira/1.0"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        request_body = self._read_body()
        try:
            status, body, headers = self.server.fake.respond(
                self.command, self.path, self.headers.get("Authorization"), request_body
            )
        except Exception:
            log.exception("fake Jira failed on %s %s", self.command, self.path)
            status, body, headers = 500, {"errorMessages": ["Internal error"], "errors": {}}, {}
        payload = (
            b""
            if body is None
            else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        self.send_response(status)
        self.send_header("Content-Type", JSON_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        # Read even when unused: unread bodies would be parsed as the next request on a
        # keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


# -- sample directory -------------------------------------------------------------------------

# fmt: off
FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jürgen",
    "Kira", "Liam", "Mia", "Noah", "Olivia", "Priya", "Quinn", "Renée", "Sam", "Tariq",
    "Uma", "Victor", "Wei", "Xavier", "Yara", "Zoë", "Aiko", "Björn", "Carlos", "Dana",
    "Elif", "Fatima", "Gustav", "Hana", "Ivan", "José", "Kofi", "Lars", "Marta", "Nina",
    "Omar", "Paula", "Rosa", "Sofia", "Tomás", "Ulla", "Vera", "Wendy", "Yusuf", "Zara",
)
LAST_NAMES = (
    "Davis", "Smith", "Nguyen", "Müller", "García", "Okafor", "Kowalski", "Rossi", "Tanaka",
    "Schmidt", "Dubois", "Novak", "Jensen", "O'Brien", "Patel", "Kim", "Silva", "Haddad",
    "Ivanova", "Lindqvist", "Brown", "Wilson", "Taylor", "Martin", "Lee", "Walker", "Young",
    "Hall", "Evans", "Fischer", "Weber", "Becker", "Moreau", "Lambert", "Costa", "Ferreira",
    "Sato", "Chen", "Wang", "Ali", "Khan", "Singh", "Cohen", "Andersen", "Berg", "Quintero",
    "Ulrich", "Xu", "Zimmermann", "Van Dyke", "Eriksson", "Yilmaz", "Adeyemi", "Ramírez",
)
# Usernames that do not start with a letter exist in every real directory and trip up
# naive "a..z" sharding, so the sample has some.
SERVICE_ACCOUNTS = (
    ("9lives", "Nine Lives"), ("_svc", "Service Account"), ("007", "Bond Integration"),
    ("_jenkins", "Jenkins"), ("42answers", "Answers Bot"), ("_backup", "Backup Job"),
    ("1stline", "First Line Support"), ("_monitoring", "Monitoring"),
)
APP_ACCOUNTS = ("Slack", "GitHub for Jira", "Automation for Jira", "Tempo", "Zephyr", "Opsgenie")
TIME_ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC",
              "Europe/London", "America/Los_Angeles", "Asia/Kolkata")
LOCALES = ("en_US", "de_DE", "en_GB", "ja_JP", "fr_FR", "es_ES")
# People whose username keeps the letters of their name, as many directories have.
NATIVE_FIRST_NAMES = (
    "Émilie", "Łukasz", "Jörg", "José", "Øystein", "Ágnes", "Şebnem", "Ærling", "Íñigo",
    "Çağla", "Zoë", "Renée", "Ōta", "Ðorđe", "Ülkü",
)
NATIVE_LAST_NAMES = (
    "Brown", "Nowak", "Müller", "Jensen", "Ødegård", "Kovács", "Yılmaz", "Ångström",  # noqa: RUF001
    "Núñez", "Škoda", "Doğan", "Þórsson", "Łęcki", "García",
)
CJK_NAMES = (("王", "芳"), ("李", "伟"), ("张", "敏"), ("刘", "洋"), ("陈", "静"), ("佐藤", "健"),
             ("김", "민준"), ("田中", "花子"))
# fmt: on
SERVICE_EVERY = 25  # one person in 25 is a service account
MIXED_CASE_EVERY = 100  # legacy mixed-case usernames: lookups must ignore case


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _unique(base: str, rng: random.Random, taken: set[str]) -> str:
    """``base`` plus a short number, widening the range on collisions."""
    for attempt in range(60):
        top = 99 if attempt < 3 else 9999 if attempt < 20 else 999999
        candidate = f"{base}{rng.randint(1, top)}"
        if candidate.lower() not in taken:
            return candidate
    raise RuntimeError(f"cannot find a free username for {base!r}")


def _sample_people(
    n: int, rng: random.Random, taken: set[str], native_every: int = 0
) -> list[dict[str, Any]]:
    firsts = [(f, _ascii(f)) for f in FIRST_NAMES]
    lasts = [(s, _ascii(s)) for s in LAST_NAMES]
    people: list[dict[str, Any]] = []
    for i in range(n):
        if i % SERVICE_EVERY == SERVICE_EVERY // 2:
            person = _service_person(i // SERVICE_EVERY, taken)
        elif native_every and i % native_every == native_every - 1:
            person = _native_person(i // native_every, rng, taken)
        else:
            (first, first_a), (last, last_a) = rng.choice(firsts), rng.choice(lasts)
            name = _unique(f"{first_a[0]}{last_a}", rng, taken)
            digits = name[1 + len(last_a) :]
            if i % MIXED_CASE_EVERY == MIXED_CASE_EVERY - 1:
                name = name.capitalize()
            person = {
                "name": name,
                "display_name": f"{first} {last}",
                "email": f"{first_a}.{last_a}{digits}@example.com",
            }
        taken.add(person["name"].lower())
        person["time_zone"] = TIME_ZONES[rng.randrange(len(TIME_ZONES))]
        person["locale"] = LOCALES[rng.randrange(len(LOCALES))]
        people.append(person)
    return people


def _native_person(index: int, rng: random.Random, taken: set[str]) -> dict[str, Any]:
    """``émilie.brown``, ``łukasz.nowak``; one in eight a CJK name such as ``王芳``."""
    if index % 8 == 7:
        family, given = CJK_NAMES[rng.randrange(len(CJK_NAMES))]
        base, display = family + given, family + given
        email_base = f"user{index}"
    else:
        first = rng.choice(NATIVE_FIRST_NAMES)
        last = rng.choice(NATIVE_LAST_NAMES)
        base, display = f"{first}.{last}".lower(), f"{first} {last}"
        email_base = f"{_ascii(first)}.{_ascii(last)}"
    name = base
    while name.lower() in taken:
        name = f"{base}{rng.randint(1, 9999)}"
    return {
        "name": name,
        "display_name": display,
        "email": f"{email_base}{name[len(base) :]}@example.com",
    }


def _service_person(index: int, taken: set[str]) -> dict[str, Any]:
    base, display = SERVICE_ACCOUNTS[index % len(SERVICE_ACCOUNTS)]
    round_ = index // len(SERVICE_ACCOUNTS)
    name = base if round_ == 0 else f"{base}{round_ + 1}"
    while name.lower() in taken:
        round_ += 1
        name = f"{base}{round_ + 1}"
    return {"name": name, "display_name": display, "email": f"{name}@example.com"}


def _sample_accounts(count: int, taken: set[str]) -> list[dict[str, Any]]:
    """Cloud app (bots, no e-mail) and customer (service desk) accounts, alternating."""
    accounts: list[dict[str, Any]] = []
    for j in range(count):
        if j % 2 == 0:
            app = APP_ACCOUNTS[(j // 2) % len(APP_ACCOUNTS)]
            name = f"addon_{_ascii(app)}{j // 2 + 1}"
            attrs = {
                "name": name,
                "display_name": app,
                "email": None,
                "account_type": "app",
                "time_zone": None,
                "locale": None,
            }
        else:
            name = f"customer{j // 2 + 1}"
            attrs = {
                "name": name,
                "display_name": f"Customer {j // 2 + 1}",
                "email": f"{name}@customers.example.org",
                "account_type": "customer",
                "time_zone": "UTC",
                "locale": "en_US",
            }
        if name.lower() in taken:
            attrs["name"] = name = f"{name}_{len(taken)}"
        taken.add(name.lower())
        accounts.append(attrs)
    return accounts


# -- command line -----------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo.fake_jira", description="Serve a fake Jira with sample users."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--flavor", choices=FLAVORS, default="datacenter")
    parser.add_argument(
        "--search-cap",
        type=int,
        default=1000,
        metavar="N",
        help="the DC user search returns only the first N matches (100: Data Center 10.0-10.2)",
    )
    parser.add_argument(
        "--no-user-list",
        action="store_true",
        help="answer 404 to /user/list, as Data Center before 10.3",
    )
    parser.add_argument("--users", type=int, default=40, help="sample people to create")
    parser.add_argument(
        "--username",
        default="admin",
        help="basic-auth user; empty means a Bearer personal access token",
    )
    parser.add_argument("--password", default="secret", help="password, API token or PAT")
    parser.add_argument(
        "--inactive-every",
        type=int,
        default=10,
        help="make every k-th sample user inactive (0: none)",
    )
    parser.add_argument(
        "--app-accounts", type=int, default=0, help="also add this many app/customer accounts"
    )
    parser.add_argument(
        "--change-every",
        type=float,
        default=0,
        metavar="SECONDS",
        help="rename a sample user every so often, so that registered webhooks fire (0: never)",
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="LOGIN:PASSWORD[:admin]",
        help="someone who signs in with their own password (the console's users); repeatable",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    fake = FakeJira(
        flavor=args.flavor,
        username=args.username or None,
        password=args.password,
        has_user_list=not args.no_user_list,
        search_cap=args.search_cap,
        host=args.host,
        port=args.port,
    )
    fake.add_sample_users(
        args.users,
        inactive_every=args.inactive_every,
        app_accounts=args.app_accounts,
        groups={"jira-software-users": 1, "jira-administrators": 20},
    )
    for account in args.account:
        login, _, rest = account.partition(":")
        secret, _, role = rest.partition(":")
        fake.accounts.add(login, secret, administrator=role == "admin")
    with fake:
        print(f"fake Jira ({args.flavor}) with {fake.user_count} users on {fake.url}", flush=True)
        changes = DirectoryChanges(fake, every=args.change_every)
        while not stopping.wait(0.5):
            changes.tick()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
