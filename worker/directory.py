"""Scanning Jira's user directory for a bulk run, page by page, resumable.

Each page comes with a checkpoint: a small JSON-able dict that, given back to ``scan``,
continues right after that page. The fan-out stores it once the page's messages are
confirmed, so a redelivered request picks up where a crashed replica stopped.

Strategies, chosen by flavour and filters:

* groups given: ``group/member`` of each group in turn (both flavours).
* Data Center with ``/user/list`` (10.3+): its cursor, every user exactly once.
* older Data Center: ``/user/search``, which never returns more than the first 1,000
  matches and has no total. A query that hits the cap is split into one query per next
  character (``a`` -> ``aa``, ``ab``, ...) until every part is under the cap; users are
  kept only in the part their username falls into, so parts never overlap.
* Cloud: ``/users/search`` by ``startAt``, skipping app and customer accounts.

Listings end at an empty page rather than a short one, since servers may cap a page
below what was asked and Cloud filters pages after cutting them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from schemas.messages import JiraUser, utc_now
from worker.errors import UserNotFound
from worker.jira import JiraClient, UserRef

SEARCH_CAP = 1000  # JRASERVER-65089: /user/search never returns more matches than this
GROUP_PAGE = 50  # group/member pages: Cloud allows at most 50, DC docs advise it
# Next characters tried when a search query is split; any seen in results are added.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789._-@'+"
Checkpoint = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class Filters:
    """Which users a bulk run syncs: username prefix (Cloud: display name), groups."""

    prefix: str | None = None
    groups: tuple[str, ...] = ()

    def keeps(self, user: JiraUser, *, cloud: bool) -> bool:
        if cloud and user.account_type not in (None, "atlassian"):
            return False  # app and customer accounts are not people
        if not self.prefix:
            return True
        name = (user.display_name if cloud else user.name) or ""
        return name.casefold().startswith(self.prefix.casefold())


@dataclass(frozen=True)
class Page:
    users: list[JiraUser]
    fetched_at: datetime
    checkpoint: Checkpoint | None  # None: the scan is complete


def scan(
    jira: JiraClient, filters: Filters, *, page_size: int, checkpoint: Checkpoint | None = None
) -> Iterator[Page]:
    """Every matching user, a page at a time, from ``checkpoint`` on."""
    state = dict(checkpoint or {})
    if filters.groups:
        yield from _group_members(jira, filters, state)
    elif jira.flavor == "cloud":
        yield from _cloud_users(jira, filters, state, page_size)
    elif state.get("mode") == "search":
        yield from _dc_search(jira, filters, state, page_size)
    else:
        try:
            yield from _dc_list(jira, filters, state, page_size)
        except UserNotFound:
            # No /user/list before DC 10.3: fall back to the partitioned search.
            yield from _dc_search(jira, filters, {"mode": "search"}, page_size)


def read_ahead(
    items: Iterator[T], *, depth: int = 1, idle: Callable[[], object] | None = None
) -> Iterator[T]:
    """``items``, with up to ``depth`` of them fetched in a thread of their own while the
    caller works on the current one: the fan-out publishes a page while Jira serves the
    next, instead of waiting for each in turn.

    An error raised while fetching is raised here, in the caller's thread, where that
    item would have been. When the caller stops early, the thread stops after the
    request it is in. While the caller waits for an item, ``idle`` is called about once
    a second (the fan-out keeps its broker connection alive with it).
    """
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for item in items:
                if not hand_over("item", item):
                    return
        except BaseException as exc:  # handed to the caller, who decides
            hand_over("error", exc)
        else:
            hand_over("end", None)

    threading.Thread(target=fetch, name="read-ahead", daemon=True).start()
    try:
        while True:
            try:
                kind, value = ready.get(timeout=1.0)
            except queue.Empty:
                if idle is not None:
                    idle()
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _keep(jira: JiraClient, filters: Filters, raw: Sequence[Any]) -> list[JiraUser]:
    cloud = jira.flavor == "cloud"
    users = [jira.to_user(u) for u in raw]
    return [u for u in users if filters.keeps(u, cloud=cloud)]


def _group_members(jira: JiraClient, filters: Filters, state: Checkpoint) -> Iterator[Page]:
    index, start_at = state.get("group", 0), state.get("start_at", 0)
    while index < len(filters.groups):
        fetched_at = utc_now()
        try:
            page = jira.get(
                f"{jira.api}/group/member",
                {
                    "groupname": filters.groups[index],
                    "includeInactiveUsers": "true",
                    "startAt": start_at,
                    "maxResults": GROUP_PAGE,
                },
            )
        except UserNotFound:
            raise UserNotFound(f"Jira has no group {filters.groups[index]!r}") from None
        values = page.get("values", [])
        start_at += len(values)
        if page.get("isLast", True) or not values:
            index, start_at = index + 1, 0
        done = index >= len(filters.groups)
        yield Page(
            _keep(jira, filters, values),
            fetched_at,
            None if done else {"group": index, "start_at": start_at},
        )


def _dc_list(jira: JiraClient, filters: Filters, state: Checkpoint, size: int) -> Iterator[Page]:
    cursor = state.get("cursor")
    while True:
        fetched_at = utc_now()
        params: dict[str, Any] = {"maxResults": size}
        if cursor:
            params["cursor"] = cursor
        page = jira.get("/rest/api/2/user/list", params)
        cursor = page.get("nextCursor")
        done = page.get("isLast", True) or not cursor
        yield Page(
            _keep(jira, filters, page.get("values", [])),
            fetched_at,
            None if done else {"mode": "list", "cursor": cursor},
        )
        if done:
            return


def _cloud_users(
    jira: JiraClient, filters: Filters, state: Checkpoint, size: int
) -> Iterator[Page]:
    start_at = state.get("start_at", 0)
    while True:
        fetched_at = utc_now()
        values = jira.get("/rest/api/3/users/search", {"startAt": start_at, "maxResults": size})
        start_at += len(values)
        yield Page(
            _keep(jira, filters, values), fetched_at, {"start_at": start_at} if values else None
        )
        if not values:
            return


def _dc_search(jira: JiraClient, filters: Filters, state: Checkpoint, size: int) -> Iterator[Page]:
    root = (filters.prefix or "").casefold()
    pending: list[str] = state.get("pending", [root])
    start_at: int = state.get("start_at", 0)
    seen_next: set[str] = set(state.get("seen_next", []))
    while pending:
        part = pending[-1]
        fetched_at = utc_now()
        values = jira.get(
            "/rest/api/2/user/search",
            {
                "username": part or ".",
                "startAt": start_at,
                "maxResults": size,
                "includeActive": "true",
                "includeInactive": "true",
            },
        )
        start_at += len(values)
        names = [(u.get("name") or "").casefold() for u in values]
        seen_next.update(n[len(part)] for n in names if n.startswith(part) and len(n) > len(part))
        # Keep only users whose username is in this part: Jira also matches display
        # names and e-mail addresses, which belong to other parts.
        users = [
            u
            for u, n in zip(_keep(jira, Filters(), values), names, strict=True)
            if n.startswith(part) and filters.keeps(u, cloud=False)
        ]
        if not values or start_at >= SEARCH_CAP:
            pending.pop()
            if start_at >= SEARCH_CAP:
                # Capped: the rest of this part is out of reach. Split it.
                pending.extend(sorted({part + c for c in set(ALPHABET) | seen_next}, reverse=True))
                users += _exact(jira, filters, part)
            start_at, seen_next = 0, set()
        checkpoint = {
            "mode": "search",
            "pending": pending,
            "start_at": start_at,
            "seen_next": sorted(seen_next),
        }
        yield Page(users, fetched_at, checkpoint if pending else None)


def _exact(jira: JiraClient, filters: Filters, username: str) -> list[JiraUser]:
    """The user named exactly like a split part (``ab`` is in no part ``ab?``)."""
    if not username:
        return []
    try:
        user = jira.fetch_user(UserRef("username", username))
    except UserNotFound:
        return []
    return [user] if filters.keeps(user, cloud=False) else []
