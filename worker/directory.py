"""Scanning Jira's user directory for a bulk run, page by page, resumable.

Each page comes with a checkpoint: an immutable value (a frozen dataclass, stored as
JSON) that, given back to ``scan``, continues right after that page and describes
nothing later. The fan-out reads a page ahead and stores a page's checkpoint once its
messages are confirmed, so a redelivered request picks up where a crashed replica
stopped, with no user skipped and none published twice by the scan itself.

Strategies, chosen by flavour and filters:

* groups given: ``group/member`` of each group in turn (both flavours; no cap).
* Data Center with ``/user/list`` (10.3+): its cursor, every user exactly once.
* older Data Center: ``/user/search``, partitioned by username (see below).
* Cloud: ``/users/search`` by ``startAt``, skipping app and customer accounts. Each page
  re-reads the last few users of the previous one and starts after them, so users
  deleted between two pages shift nothing past the scan (``worker/paging.py``). A page
  may come back short (Cloud filters pages after cutting them): the next page starts
  right after what was received, so nothing is skipped, and users the previous page
  already gave are dropped, so nothing is given twice.

Listings end at an empty page rather than a short one.

**The partitioned search.** ``/user/search?username=Q`` matches, case-insensitively, the
start of the username, of the display name and of each of its words, and of the e-mail
address; it returns only the first *C* matches (in display-name order) and no total,
where *C* is 1,000 before Jira 10 and 100 on Data Center 10.0-10.2. *C* is learnt from
the answers, never assumed (``worker/partition.py``): a query is read until Jira gives
an empty page, and its total is below the cap when it is below the most any query has
returned. A *part* is a lower-cased username prefix; the part owns the users whose
lower-cased username starts with it. A query below the cap returns every user of its
part, and the part's users are kept, the other matches dropped. A query that may have
hit the cap is *split*: one child part per character of the *alphabet*, plus a
direct look-up of the user named exactly like the part. Every user is kept once: by
the shortest uncapped prefix of their username, or, named exactly like a capped part,
by that part's look-up.

The alphabet starts as ``a-z 0-9 . _ - @ ' +`` and grows with every character of every
username in any answer, whatever the query that returned it: users hidden behind one
part's cap show up in other parts' answers through their display-name words and e-mail
addresses, and their usernames teach the characters needed. A part split before a
character was learnt gets a child for it later, so the order of discovery does not
matter. Jira orders matches by display name, so a part's own users are often the ones
behind its cap: the split never relies on what the part's own answer showed.

Which users can still be missed: a user whose username continues, right after a prefix
that the cap or more users match, with a character that no username in any answer
contains (which also means that no query returned them through their display name or
e-mail address). Also out of reach of any listing: users Jira leaves out of them
(permissions, a directory being synchronised), usernames starting with ``İ`` (Jira's
matcher lower-cases it to two characters and then never matches it), and users added
or renamed into a part after it was read. What protects their assets: an unfiltered
run marks an asset missing only when Jira answers 404 to a look-up of its user's key,
and syncs the users such look-ups find (``worker/missing.py``). Users with no asset yet
get one at their next login.

Not used for an unfiltered scan: group listings. They are paged without a cap, but
they need the groups' names, which Data Center lists only through a capped picker;
they reach only users who are in some group; and they cost a request per 50
memberships on top of the search, whose gaps they would not close for users in no
group. A run filtered by group uses them, and is complete for its groups.

Cost: one request per part queried (more for parts of over a page), so about the
alphabet's size per capped part: ten times as many capped parts under a cap of 100 as
under 1,000. Measured requests per user: bench/README.md.

Case: prefixes match as Jira's lower-casing does (``str.lower``, Unicode's lower-case
mapping), not ``casefold``: ``ß`` stays ``ß``, so ``--prefix ss`` does not match
``ßmith`` and ``--prefix ß`` does not match ``ssmith``, as in Jira.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from schemas.messages import JiraUser, utc_now
from worker import paging
from worker.checkpoints import (
    Checkpoint as Checkpoint,  # re-exported: the fan-out's type for a scan position
)
from worker.checkpoints import CloudPosition, GroupPosition, ListPosition, SearchPosition
from worker.errors import BadJiraUser, UserNotFound
from worker.jira import JiraClient, UserRef
from worker.partition import Partition

log = logging.getLogger(__name__)

GROUP_PAGE = 50  # group/member pages: Cloud allows at most 50, DC docs advise it
# A search scan yields a page (and so a checkpoint) at least every so many requests,
# even when the parts it went through had no users, so that progress is saved and the
# fan-out gets to keep its broker connection alive.
REQUESTS_PER_PAGE = 20
T = TypeVar("T")
Clock = Callable[[], datetime]  # what a page's fetched_at is read from


def jira_lower(text: str) -> str:
    """Lower-cased as Jira compares usernames (Java's ``toLowerCase``), not case-folded."""
    return text.lower()


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
        return jira_lower(name).startswith(jira_lower(self.prefix))


# -- scanning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    users: tuple[JiraUser, ...]
    fetched_at: datetime  # when the oldest of these users was read from Jira
    checkpoint: Checkpoint | None  # None: the scan is complete
    # Users Jira described in a way that cannot be stored: (identity, why). Counted as
    # failed in the run; the rest of the run goes on.
    rejected: tuple[tuple[str, str], ...] = ()


def scan(
    jira: JiraClient,
    filters: Filters,
    *,
    page_size: int,
    checkpoint: Checkpoint | None = None,
    clock: Clock = utc_now,
) -> Iterator[Page]:
    """Every matching user, a page at a time, from ``checkpoint`` on. Each page's
    ``fetched_at`` is read from ``clock`` before its first request (the fan-out's is
    the database's, shared by every replica)."""
    if filters.groups:
        yield from _group_members(jira, filters, _resumable(checkpoint, GroupPosition), clock)
    elif jira.flavor == "cloud":
        at = _resumable(checkpoint, CloudPosition)
        yield from _cloud_users(jira, filters, at, page_size, clock)
    elif isinstance(checkpoint, SearchPosition):
        yield from _dc_search(jira, filters, checkpoint, page_size, clock)
    else:
        try:
            at_list = _resumable(checkpoint, ListPosition)
            yield from _dc_list(jira, filters, at_list, page_size, clock)
        except UserNotFound:
            # No /user/list before DC 10.3: fall back to the partitioned search.
            yield from _dc_search(jira, filters, None, page_size, clock)


def _resumable(checkpoint: Checkpoint | None, kind: type[T]) -> T | None:
    if checkpoint is None or isinstance(checkpoint, kind):
        return checkpoint
    # Jira changed flavour or version under a running run: start over.
    log.warning("the checkpoint %r does not fit this scan; starting the scan over", checkpoint)
    return None


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


def _users(
    jira: JiraClient,
    raw: Iterable[Any],
    rejected: list[tuple[str, str]] | None = None,
    counts: Callable[[Any], bool] = lambda entry: True,
) -> list[JiraUser]:
    """Snapshots of the well-formed entries. A malformed one is logged, left out and, when
    ``rejected`` is given and ``counts`` it, added there under its identity
    (``rejected_id``): the run counts it failed, and never marks its user missing
    (``worker/missing.py``)."""
    users = []
    for entry in raw:
        try:
            users.append(jira.to_user(entry))
        except BadJiraUser as exc:
            log.warning("skipping a user of a Jira listing: %s", exc)
            if rejected is not None and counts(entry):
                rejected.append((rejected_id(entry, cloud=jira.flavor == "cloud"), str(exc)))
    return users


def rejected_id(entry: Any, *, cloud: bool) -> str:
    """The identity a malformed entry is counted under: its key or accountId when it has
    a usable one (so that its asset is known to be reached), else a digest of the entry
    (so that reading it twice counts it once)."""
    ident = entry.get("accountId" if cloud else "key") if isinstance(entry, dict) else None
    if isinstance(ident, str) and 0 < len(ident) <= 255 and "\x00" not in ident:
        return ident
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode())
    return f"unidentified:{digest.hexdigest()[:24]}"


def _keep(
    jira: JiraClient, filters: Filters, raw: Iterable[Any], rejected: list[tuple[str, str]]
) -> tuple[JiraUser, ...]:
    cloud = jira.flavor == "cloud"
    return tuple(u for u in _users(jira, raw, rejected) if filters.keeps(u, cloud=cloud))


def _group_members(
    jira: JiraClient, filters: Filters, at: GroupPosition | None, clock: Clock
) -> Iterator[Page]:
    index, start_at = (at.group, at.start_at) if at else (0, 0)
    while index < len(filters.groups):
        fetched_at = clock()
        page = jira.group_members(filters.groups[index], start_at=start_at, max_results=GROUP_PAGE)
        values = page.get("values", [])
        start_at += len(values)
        if page.get("isLast", True) or not values:
            index, start_at = index + 1, 0
        done = index >= len(filters.groups)
        rejected: list[tuple[str, str]] = []
        yield Page(
            _keep(jira, filters, values, rejected),
            fetched_at,
            None if done else GroupPosition(index, start_at),
            tuple(rejected),
        )


def _dc_list(
    jira: JiraClient, filters: Filters, at: ListPosition | None, size: int, clock: Clock
) -> Iterator[Page]:
    cursor = at.cursor if at else None
    while True:
        fetched_at = clock()
        page = jira.user_list(cursor=cursor, max_results=size)
        cursor = page.get("nextCursor")
        done = page.get("isLast", True) or not isinstance(cursor, str) or not cursor
        rejected: list[tuple[str, str]] = []
        yield Page(
            _keep(jira, filters, page.get("values", []), rejected),
            fetched_at,
            None if done else ListPosition(str(cursor)),
            tuple(rejected),
        )
        if done:
            return


def _cloud_users(
    jira: JiraClient, filters: Filters, at: CloudPosition | None, size: int, clock: Clock
) -> Iterator[Page]:
    """Cloud's offset pages, each overlapping the previous one (``worker/paging.py``) so
    that users deleted between two pages make the scan skip no one. A page may also come
    back short while more follow (Cloud drops accounts after cutting it): the next one
    starts right after what was received. The scan ends at a page that, asked for
    without overlap, is empty."""
    start_at, tail = (at.start_at, at.previous) if at else (0, ())
    overlap = paging.overlap_for(size)
    confirming = False  # the last page held no new user: is there really nothing after it?
    while True:
        fetched_at = clock()
        ask = start_at if confirming else max(0, start_at - min(overlap, len(tail)))
        values = jira.cloud_users(start_at=ask, max_results=size)
        ids = [rejected_id(entry, cloud=True) for entry in values]
        begin = paging.new_from(ids, tail)
        if begin is None and ask > 0 and not confirming:
            # The tail is not where it was, nor in this page: look a page earlier.
            start_at = max(0, ask - size) + min(overlap, len(tail))
            continue
        fresh = values[begin or 0 :]
        if not fresh and not confirming and len(values) < size:
            confirming, start_at = True, ask + len(values)
            continue
        done = confirming and not values
        confirming = False
        start_at = ask + len(values)
        if ids:
            tail = tuple(ids[-paging.REMEMBERED :])
        rejected: list[tuple[str, str]] = []
        users = [u for u in _users(jira, fresh, rejected) if filters.keeps(u, cloud=True)]
        yield Page(
            tuple(users),
            fetched_at,
            None if done else CloudPosition(start_at, tail),
            tuple(rejected),
        )
        if done:
            return


# -- the partitioned search ----------------------------------------------------------------


def _dc_search(
    jira: JiraClient, filters: Filters, at: SearchPosition | None, size: int, clock: Clock
) -> Iterator[Page]:
    partition = Partition(jira_lower(filters.prefix or ""), at)
    batch: list[JiraUser] = []
    rejected: list[tuple[str, str]] = []
    batch_at: datetime | None = None
    requests = 0
    while (part := partition.next_part()) is not None:
        fetched_at = clock()
        values, used = _search(jira, partition, part, size)
        named = _identities(values)
        partition.witness(named)
        capped = partition.capped(part, len(values), (ident for ident, _ in named))
        # A bad entry counts once: in the (uncapped) part its username is in.
        owns = functools.partial(_owned_by, part=part) if not capped else _never
        users = _users(jira, values, rejected, counts=owns)
        partition.learn(jira_lower(u.name or "") for u in users)
        if capped:
            partition.split(part)
            owned = _exact(jira, part)
            used += 1 if part else 0
        else:
            owned = [u for u in users if jira_lower(u.name or "").startswith(part)]
        batch.extend(u for u in _unique(owned) if filters.keeps(u, cloud=False))
        batch_at = batch_at or fetched_at
        requests += used
        if len(batch) >= size or requests >= REQUESTS_PER_PAGE:
            yield Page(tuple(batch), batch_at, partition.position(), tuple(rejected))
            batch, rejected, batch_at, requests = [], [], None, 0
    yield Page(tuple(batch), batch_at or clock(), None, tuple(rejected))


def _identities(values: Iterable[Any]) -> list[tuple[str, str]]:
    """(key, lower-cased username) of each entry that has both, as text."""
    found = []
    for entry in values:
        if isinstance(entry, dict):
            key, name = entry.get("key"), entry.get("name")
            if isinstance(key, str) and isinstance(name, str):
                found.append((key, jira_lower(name)))
    return found


def _never(entry: Any) -> bool:
    return False


def _owned_by(entry: Any, part: str) -> bool:
    name = entry.get("name") if isinstance(entry, dict) else None
    return isinstance(name, str) and jira_lower(name).startswith(part)


def _search(
    jira: JiraClient, partition: Partition, part: str, size: int
) -> tuple[list[dict[str, Any]], int]:
    """Every match of one part's query that Jira gives, page by page until its answers
    say there is no more (``Partition.more_after``): (matches, requests)."""
    values: list[dict[str, Any]] = []
    requests = 0
    while (asked := partition.page_size(len(values), size)) > 0:
        page = jira.search_users(
            part or ".",  # "." is Jira's "everyone"
            start_at=len(values),
            max_results=asked,
        )
        requests += 1
        values += page
        if not partition.more_after(got=len(page), asked=asked, total=len(values)):
            break
    return values, requests


def _exact(jira: JiraClient, username: str) -> list[JiraUser]:
    """The user named exactly like a split part (``ab`` is in no part ``ab?``)."""
    if not username:
        return []
    try:
        user = jira.fetch_user(UserRef("username", username))
    except UserNotFound:
        return []
    except BadJiraUser as exc:
        log.warning("skipping the user named %r: %s", username, exc)
        return []
    return [user] if jira_lower(user.name or "") == username else []


def _unique(users: Sequence[JiraUser]) -> list[JiraUser]:
    """Each user once, by stable identity (a listing that shifts between two of its
    pages can give the same user twice)."""
    first: dict[str, JiraUser] = {}
    for user in users:
        first.setdefault(user.jira_id, user)
    return list(first.values())
