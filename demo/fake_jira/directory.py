"""The fake's directory: users, groups, their indexes, and how Jira's user search
matches and orders them (``UserMatcherPredicate``, ``UserCachingComparator``)."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

# The first DC key handed out: Jira 8+ keys look like JIRAUSER10000.
FIRST_KEY_NUMBER = 10000
CLOUD_ID_PREFIX = "5b10a2844c20165700ede"
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


@dataclass(slots=True)
class User:
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
class Group:
    name: str
    group_id: str
    members: set[int] = field(default_factory=set)  # user uids


class Directory:
    """Users, groups and their indexes. Not threadsafe: FakeJira holds its lock."""

    def __init__(self) -> None:
        self.users: dict[int, User] = {}  # insertion order == creation order
        self.by_key: dict[str, User] = {}
        self.by_name: dict[str, User] = {}  # lowercased username: lookups ignore case
        self.by_account: dict[str, User] = {}
        self.groups: dict[str, Group] = {}  # lowercased name: Jira ignores case
        self.by_group_id: dict[str, Group] = {}
        self.counter = 0
        self.version = 0  # bumped on every change; views remember what they were built from
        self._views_version = -1
        self._by_creation: list[User] = []
        self._creation_uids: list[int] = []
        self._member_views: dict[str, tuple[int, list[User], list[User]]] = {}
        # The DC search's index, rebuilt on its own counter: display-name changes (which
        # the bench makes during runs) do not disturb the listings' views.
        self.search_version = 0
        self._index_version = -1
        self._search_order: list[User] = []
        self._rank: dict[int, int] = {}
        self._index_keys: list[str] = []
        self._index_uids: list[int] = []

    # -- changes -------------------------------------------------------------------------

    def add(self, name: str, key: str | None, account_id: str | None, **attrs: Any) -> User:
        n = self.counter
        while not self._generated_ids_free(n, key is None, account_id is None):
            n += 1  # a test gave someone this id explicitly
        key = key or f"JIRAUSER{FIRST_KEY_NUMBER + n}"
        account_id = account_id or f"{CLOUD_ID_PREFIX}{n:03x}"
        self._check_free(name, key, account_id)
        self.counter = n + 1
        user = User(uid=n, name=name, key=key, account_id=account_id, **attrs)
        self.users[user.uid] = user
        self._index(user)
        self.version += 1
        self.search_version += 1
        return user

    def update(self, user: User, fields: dict[str, Any]) -> None:
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

    def remove(self, user: User) -> None:
        self.set_groups(user, [])
        self._unindex(user)
        del self.users[user.uid]
        self.version += 1
        self.search_version += 1

    def set_groups(self, user: User, names: Iterable[str]) -> None:
        for lowered in list(user.groups):
            self.groups[lowered].members.discard(user.uid)
        user.groups.clear()
        for name in names:
            self.join(self.ensure_group(name), user)
        self.version += 1

    def ensure_group(self, name: str) -> Group:
        group = self.groups.get(name.lower())
        if group is None:
            # uuid5 keeps group ids stable across runs, like Cloud's stable groupIds.
            group = Group(name=name, group_id=str(uuid.uuid5(uuid.NAMESPACE_URL, name.lower())))
            self.groups[name.lower()] = group
            self.by_group_id[group.group_id] = group
            self.version += 1
        return group

    def join(self, group: Group, user: User) -> None:
        group.members.add(user.uid)
        user.groups.add(group.name.lower())
        self.version += 1

    # -- lookups -------------------------------------------------------------------------

    def resolve(self, ident: str) -> User:
        """Key first, then username, then accountId: keys are the stable identity."""
        user = (
            self.by_key.get(ident) or self.by_name.get(ident.lower()) or self.by_account.get(ident)
        )
        if user is None:
            raise KeyError(f"no user {ident!r} in the fake Jira")
        return user

    def by_creation(self) -> tuple[list[User], list[int]]:
        self._refresh_views()
        return self._by_creation, self._creation_uids

    def search(self, needle: str, active: bool, inactive: bool, limit: int) -> list[User]:
        """DC's user search: the first ``limit`` matches in Jira's order (display name,
        then username). A user matches when the lower-cased query starts their username,
        their display name or one of its words, or their e-mail address."""
        if not needle or limit <= 0:
            return []
        self._refresh_index()

        def wanted(user: User) -> bool:
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

    def members(self, group: Group, include_inactive: bool) -> list[User]:
        cached = self._member_views.get(group.group_id)
        if cached is None or cached[0] != self.version:
            everyone = sorted(
                (self.users[uid] for uid in group.members if not self.users[uid].hidden),
                key=lambda u: (u.name_l, u.name),
            )
            cached = (self.version, everyone, [u for u in everyone if u.active])
            self._member_views[group.group_id] = cached
        return cached[1] if include_inactive else cached[2]

    def group_list(self, user: User) -> list[Group]:
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

    def _index(self, user: User) -> None:
        self.by_key[user.key] = user
        self.by_name[user.name_l] = user
        self.by_account[user.account_id] = user

    def _unindex(self, user: User) -> None:
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


def _display_words(user: User) -> list[str]:
    # Jira splits display names on spaces only, dropping empty words.
    return [word for word in user.display_name.split(" ") if word]


def _jira_starts(text: str, query: str) -> bool:
    # As Jira compares: the text's first len(query) characters, lower-cased, equal the
    # lower-cased query. (So a name starting with "İ", which lower-cases to two
    # characters, is never matched by a search on its start.)
    return len(query) <= len(text) and text[: len(query)].lower() == query


def _jira_matches(user: User, query: str) -> bool:
    """Jira's UserMatcherPredicate: username, e-mail, display name, or any later word."""
    return (
        _jira_starts(user.name, query)
        or (bool(user.email) and _jira_starts(user.email or "", query))
        or _jira_starts(user.display_name, query)
        or any(_jira_starts(word, query) for word in _display_words(user)[1:])
    )
