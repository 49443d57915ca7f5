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

import base64
import bisect
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

from demo import fake_webhooks
from demo.fake_jira.directory import Directory, Group, User
from demo.fake_jira.render import (
    HttpError,
    cloud_user,
    dc_user,
    decode_cursor,
    encode_cursor,
    groups_json,
)
from demo.fake_jira.samples import sample_accounts, sample_people
from demo.fake_jira.wire import Fault, Query, Route, Server, fault_message
from demo.fake_webhooks import FakeWebhooks
from demo.jira_accounts import Account, Accounts

log = logging.getLogger(__name__)

Json = dict[str, Any]

FLAVORS = ("datacenter", "cloud")
DC_VERSION = (10, 3, 1)
CLOUD_VERSION = (1001, 0, 0)
GLOBAL_PERMISSIONS = {"ADMINISTER": 0, "SYSTEM_ADMIN": 44}
# Real Cloud still has some old-style ids; the stand-in admin uses one so clients that
# assume 24 hex digits notice.
ADMIN_ACCOUNT_ID = "557058:5f8b1c2e-6d3a-4f0e-9a7b-2c4d8e1f0a99"
DC_LIST_DEFAULT = 2000
GROUP_PAGE_CAP = 50
CLOUD_PAGE_CAP = 1000


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
        self._dir = Directory()
        self._faults: list[Fault] = []
        self._delay = 0.0
        self._path_delays: dict[str, float] = {}
        # (matching requests still to answer first, path fragment, what then happens)
        self._after: list[tuple[int, str, Callable[[], None]]] = []
        self._server: Server | None = None
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
        self._server = Server((self._host, self._port), self)
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
            people = sample_people(n, random.Random(seed), taken, native_every)
            accounts = sample_accounts(app_accounts, taken)
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
                self._faults.append(Fault(count, status, retry_after, path_contains))

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
            return 200, route.handler(Query(parts.query), parts.path.rstrip("/")), {}
        except HttpError as exc:
            return self._error(exc.status, exc.message)

    def _webhook_resource(
        self, method: str, path: str, authorized: bool | None, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """The admin webhook REST resource: kept apart from the read-only user API."""
        if not authorized:
            return self._unauthorized()
        return self.webhooks.respond(method, path.rstrip("/"), body, self._error)

    def _take_fault(self, target: str) -> Fault | None:
        for fault in self._faults:
            if fault.path_contains in target:
                self.faults_served += 1
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_response(self, fault: Fault) -> tuple[int, Any, dict[str, str]]:
        status, body, headers = self._error(fault.status, fault_message(fault.status))
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

    def _build_routes(self) -> dict[str, Route]:
        if not self.cloud:
            routes = {
                "/rest/api/2/serverInfo": Route(self._ep_server_info, needs_auth=False),
                "/rest/api/2/myself": Route(self._ep_myself),
                "/rest/api/2/mypermissions": Route(self._ep_mypermissions),
                "/rest/api/2/user": Route(self._ep_dc_user),
                "/rest/api/2/user/search": Route(self._ep_dc_search),
                "/rest/api/2/group/member": Route(self._ep_group_member),
            }
            if self._has_user_list:  # older DC answers 404 here
                routes["/rest/api/2/user/list"] = Route(self._ep_dc_list)
            return routes
        routes = {}
        for api in ("/rest/api/2", "/rest/api/3"):  # Cloud serves both versions alike
            routes[f"{api}/serverInfo"] = Route(self._ep_server_info, needs_auth=False)
            routes[f"{api}/myself"] = Route(self._ep_myself)
            routes[f"{api}/mypermissions"] = Route(self._ep_mypermissions)
            routes[f"{api}/user"] = Route(self._ep_cloud_user)
            routes[f"{api}/users/search"] = Route(self._ep_cloud_users)
            routes[f"{api}/group/member"] = Route(self._ep_group_member)
        return routes

    def _ep_server_info(self, query: Query, path: str) -> Json:
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

    def _ep_myself(self, query: Query, path: str) -> Json:
        account: Account | None = getattr(self._caller, "account", None)
        with self._lock:
            if account is None:
                return self._user_json(self._admin(), query.expands("groups"))
            user = self._dir.by_name.get(account.login.lower())
            if user is None:
                user = User(
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

    def _ep_mypermissions(self, query: Query, path: str) -> Json:
        """The caller's global permissions, as Jira answers them (Cloud requires the
        ``permissions`` parameter; the service account administers)."""
        wanted = [k for k in (query.text("permissions") or "").split(",") if k]
        if not wanted and self.cloud:
            raise HttpError(400, "The 'permissions' query parameter is required.")
        unknown = [k for k in wanted if k not in GLOBAL_PERMISSIONS]
        if unknown:
            raise HttpError(400, f"Could not find permission {unknown[0]}")
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

    def _ep_dc_user(self, query: Query, path: str) -> Json:
        username, key = query.text("username"), query.text("key")
        if (username is None) == (key is None):
            raise HttpError(400, "Either the username or the key query parameter must be given")
        with self._lock:
            if key is not None:
                user = self._dir.by_key.get(key)
                missing = f"The user with the key '{key}' does not exist"
            else:
                user = self._dir.by_name.get((username or "").lower())
                missing = f"The user named '{username}' does not exist"
            if user is None:
                raise HttpError(404, missing)
            return self._user_json(user, query.expands("groups"))

    def _ep_cloud_user(self, query: Query, path: str) -> Json:
        account_id = query.text("accountId")
        if not account_id:
            for gone in ("username", "key"):
                if query.text(gone) is not None:
                    raise HttpError(
                        400, f"The query parameter '{gone}' is not supported in GDPR strict mode."
                    )
            raise HttpError(400, "The query parameter 'accountId' is required")
        with self._lock:
            user = self._dir.by_account.get(account_id)
            if user is None:
                raise HttpError(
                    404, "Specified user does not exist or you do not have required permissions"
                )
            return self._user_json(user, query.expands("groups"))

    def _ep_dc_search(self, query: Query, path: str) -> list[Json]:
        needle = query.text("username")
        if needle is None:
            raise HttpError(400, "The username query parameter was not provided")
        start, size = self._paging(query, default=50, cap=self._max_page)
        active = query.boolean("includeActive", True)
        inactive = query.boolean("includeInactive", False)
        # Only the first `search_cap` matches are reachable, whatever startAt says.
        limit = min(self._search_cap, start + size)
        with self._lock:
            found = self._dir.search(needle.lower(), active, inactive, limit)
            return self._users_json(found[start:])

    def _ep_dc_list(self, query: Query, path: str) -> Json:
        size = min(query.integer("maxResults", DC_LIST_DEFAULT), self._max_page)
        if size < 1:
            raise HttpError(400, "The 'maxResults' parameter must be at least 1")
        after = decode_cursor(query.text("cursor"))
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
            body["nextCursor"] = encode_cursor(page[-1].uid)
        return body

    def _ep_cloud_users(self, query: Query, path: str) -> list[Json]:
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

    def _ep_group_member(self, query: Query, path: str) -> Json:
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

    def _paging(self, query: Query, *, default: int, cap: int) -> tuple[int, int]:
        return query.integer("startAt", 0), min(query.integer("maxResults", default), cap)

    def _find_group(self, query: Query) -> tuple[Group, dict[str, str]]:
        group_id = query.text("groupId") if self.cloud else None
        if group_id:
            group = self._dir.by_group_id.get(group_id)
            if group is None:
                raise HttpError(404, f"No group with groupId '{group_id}'")
            return group, {"groupId": group_id}
        name = query.text("groupname")
        if not name:
            raise HttpError(400, "You must specify a group name" + (" or ID" if self.cloud else ""))
        group = self._dir.groups.get(name.lower())
        if group is None:
            raise HttpError(404, f"Group with name '{name}' does not exist.")
        return group, {"groupname": name}

    def _admin(self) -> User:
        """The directory user we log in as, or a stand-in outside the directory.

        The stand-in keeps sample directories exactly the size tests ask for.
        """
        login = (self._username or "admin").lower()
        user = self._dir.by_name.get(login)
        if user is None and self.cloud:
            user = next((u for u in self._dir.users.values() if u.email_l == login), None)
        return user or User(
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

    def _users_json(self, users: Iterable[User]) -> list[Json]:
        base, render = self._base(), cloud_user if self.cloud else dc_user
        return [render(user, base) for user in users]

    def _user_json(self, user: User, with_groups: bool = False) -> Json:
        base = self._base()
        body = cloud_user(user, base) if self.cloud else dc_user(user, base)
        if with_groups:
            body["groups"] = groups_json(self._dir.group_list(user), self.cloud, base)
        return body
