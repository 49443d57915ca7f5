"""Jira's REST API over httpx: users from Data Center (v2) or Cloud (v3), and the admin
webhooks of the receiver. Every REST path of the project is written here.

Errors are classified in ``answers`` and raised from here: nothing above this client
imports httpx. Timeouts, an overall deadline and a size limit bound every request.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx

from schemas.messages import JiraUser
from worker.decoding import parse_json
from worker.errors import ConfigError, InvalidMessage, JiraRejected, JiraUnavailable, UserNotFound
from worker.jira import answers
from worker.jira.answers import Flavor, Webhook

if TYPE_CHECKING:
    from worker.settings import Settings

log = logging.getLogger("worker.jira")

RefKind = Literal["username", "user_key", "account_id"]
# Jira's admin webhook resource, the same on Data Center and Cloud.
WEBHOOKS = "/rest/webhooks/1.0/webhook"
READ_USERS = "browse users"
MANAGE_WEBHOOKS = "manage webhooks (the Jira administrators global permission)"


@dataclass(frozen=True)
class UserRef:
    """How a message names a user: by username or key (Data Center), or accountId (Cloud)."""

    kind: RefKind
    value: str


@dataclass(frozen=True)
class Patience:
    """How a client waits out Jira's transient failures instead of raising them.

    :param delays: seconds before each repeated request (the last one repeats), or
        longer when Jira says so (``Retry-After``). Once the next wait would take the
        total past ``sum(delays)``, the failure is raised after all.
    :param sleep: waits; may raise (``Interrupted``) to give up early.
    """

    delays: tuple[float, ...]
    sleep: Callable[[float], None]


class JiraClient:
    """One ``httpx.Client`` per process; timeouts always on.

    :param base_url: the Jira base URL, e.g. ``https://jira.example.com``.
    :param username: basic-auth user (Cloud: the account e-mail); ``None`` means the
        token is a personal access token, sent as ``Authorization: Bearer``.
    :param token: API token (basic auth) or personal access token.
    :param flavor: ``auto`` asks ``serverInfo`` once, on first use.
    :param timeout: seconds for connecting, and for each read.
    :param deadline: seconds a whole request may take, answer included.
    :param max_response_bytes: larger answers are refused (``JiraRejected``).
    :param verify: check Jira's certificate: ``True`` against the system's CAs, or the
        path of a CA bundle.
    :param transport: an ``httpx`` transport, for tests at the HTTP seam.
    :param observe: called after each request with its path, status and seconds.
    """

    def __init__(
        self,
        *,
        base_url: str,
        username: str | None,
        token: str | None,
        flavor: Literal["auto", "datacenter", "cloud"] = "auto",
        timeout: float = 10.0,
        deadline: float = 60.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        auth: httpx.Auth | None = None
        headers = {"Accept": "application/json"}
        if username is not None:
            auth = httpx.BasicAuth(username, token or "")
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            verify=verify,
            transport=transport,
        )
        self._deadline = deadline
        self._max_bytes = max_response_bytes
        self._observe = observe
        self._flavor: Flavor | None = None if flavor == "auto" else flavor
        self._patience: Patience | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        observe: Callable[[str, str, float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> JiraClient:
        """The client the ``ASSETSYNC_JIRA_*`` settings describe.

        :raises ConfigError: ``ASSETSYNC_JIRA_URL`` is not set.
        """
        if not settings.jira_url:
            raise ConfigError("ASSETSYNC_JIRA_URL is not set: which Jira should be read?")
        return cls(
            base_url=settings.jira_url,
            username=settings.jira_username,
            token=settings.jira_token.get_secret_value() if settings.jira_token else None,
            flavor=settings.jira_flavor,
            timeout=settings.jira_timeout,
            deadline=settings.jira_deadline,
            max_response_bytes=settings.jira_max_response_bytes,
            verify=str(settings.jira_ca_bundle) if settings.jira_ca_bundle else True,
            transport=transport,
            observe=observe,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JiraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_patience(self, patience: Patience) -> JiraClient:
        """This client (same connections), waiting out transient failures: for long
        scans, where one failed request would otherwise cost the whole attempt."""
        patient = copy.copy(self)
        patient._patience = patience
        return patient

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    @property
    def flavor(self) -> Flavor:
        if self._flavor is None:
            try:
                info = self._get("/rest/api/2/serverInfo")
            except UserNotFound as exc:
                raise ConfigError(
                    f"ASSETSYNC_JIRA_URL: {self._http.base_url} does not answer like Jira"
                    " (no /rest/api/2/serverInfo there; is a context path missing?)"
                ) from exc
            if not isinstance(info, dict):
                raise JiraUnavailable(f"Jira sent {type(info).__name__} for its serverInfo")
            self._flavor = "cloud" if info.get("deploymentType") == "Cloud" else "datacenter"
        return self._flavor

    @property
    def _api(self) -> str:
        return "/rest/api/3" if self.flavor == "cloud" else "/rest/api/2"

    def check(self) -> str:
        """Verify the URL and credentials; return a line that says what we talk to."""
        try:
            me = self._get(f"{self._api}/myself")
        except UserNotFound as exc:
            raise ConfigError(
                f"ASSETSYNC_JIRA_URL: {self._http.base_url} does not answer like Jira"
                " (no /rest/api/.../myself there; is a context path such as /jira missing?)"
            ) from exc
        who = me.get("name") or me.get("emailAddress") or me.get("accountId") or "?"
        return f"Jira {self.flavor} at {self._http.base_url} as {who}"

    # -- who signs in -------------------------------------------------------------------

    def myself(self) -> dict[str, Any]:
        """The account this client signs in as (``/myself``).

        :raises JiraCaptcha: Jira wants a CAPTCHA answered before it checks the password.
        :raises JiraAuthError: Jira refused the credentials.
        """
        path = f"{self._api}/myself"
        me = self._get(path)
        if not isinstance(me, dict):
            raise JiraUnavailable(f"Jira sent {type(me).__name__} for {path}")
        return me

    def may_administer(self) -> bool:
        """Whether the account this client signs in as holds Jira's global ADMINISTER
        permission (``/mypermissions`` answers for the caller: ask as the person)."""
        answer = self._get(f"{self._api}/mypermissions", {"permissions": "ADMINISTER"})
        found = (
            answer.get("permissions", {}).get("ADMINISTER") if isinstance(answer, dict) else None
        )
        return isinstance(found, dict) and found.get("havePermission") is True

    def group_exists(self, name: str) -> bool:
        try:
            self.group_members(name, start_at=0, max_results=1)
        except UserNotFound:
            return False
        return True

    # -- users ---------------------------------------------------------------------------

    def fetch_user(self, ref: UserRef, *, with_groups: bool = False) -> JiraUser:
        if self.flavor == "cloud":
            if ref.kind != "account_id":
                raise InvalidMessage(f"Jira Cloud identifies users by account_id, not {ref.kind}")
            params = {"accountId": ref.value}
        elif ref.kind == "account_id":
            raise InvalidMessage("Jira Data Center identifies users by username or user_key")
        else:
            params = {"username" if ref.kind == "username" else "key": ref.value}
        if with_groups:
            params["expand"] = "groups"
        try:
            data = self._get(f"{self._api}/user", params)
        except UserNotFound:
            raise UserNotFound(f"Jira has no user with {ref.kind} {ref.value!r}") from None
        return self.to_user(data)

    def to_user(self, data: Any) -> JiraUser:
        """Jira's user JSON (of this client's flavour) as a snapshot.

        :raises BadJiraUser: the JSON is not a user this service can store.
        """
        return answers.to_user(data, flavor=self.flavor)

    def user_list(self, *, cursor: str | None, max_results: int) -> dict[str, Any]:
        """A page of Data Center 10.3+'s user listing (``values``, ``nextCursor``,
        ``isLast``); ``cursor`` None for the first page."""
        path = "/rest/api/2/user/list"
        params: dict[str, Any] = {"maxResults": max_results}
        if cursor:
            params["cursor"] = cursor
        return answers.page(self._get(path, params), path)

    def search_users(self, query: str, *, start_at: int, max_results: int) -> list[Any]:
        """A page of Data Center's user search: users whose username, display name (or a
        word of it) or e-mail address starts with ``query`` (``.`` matches everyone),
        active and inactive."""
        path = "/rest/api/2/user/search"
        params = {
            "username": query,
            "startAt": start_at,
            "maxResults": max_results,
            "includeActive": "true",
            "includeInactive": "true",
        }
        return answers.listing(self._get(path, params), path)

    def cloud_users(self, *, start_at: int, max_results: int) -> list[Any]:
        """A page of Jira Cloud's list of every account."""
        path = "/rest/api/3/users/search"
        params = {"startAt": start_at, "maxResults": max_results}
        return answers.listing(self._get(path, params), path)

    def group_members(self, group: str, *, start_at: int, max_results: int) -> dict[str, Any]:
        """A page of a group's members, inactive ones included (``values``, ``isLast``).

        :raises UserNotFound: Jira has no such group.
        """
        path = f"{self._api}/group/member"
        params = {
            "groupname": group,
            "includeInactiveUsers": "true",
            "startAt": start_at,
            "maxResults": max_results,
        }
        try:
            return answers.page(self._get(path, params), path)
        except UserNotFound:
            raise UserNotFound(f"Jira has no group {group!r}") from None

    # -- the receiver's webhooks ---------------------------------------------------------

    def webhooks(self) -> list[Webhook]:
        """Every admin webhook (needs a Jira administrator)."""
        return answers.webhooks(self._call("GET", WEBHOOKS))

    def create_webhook(self, body: dict[str, Any]) -> Webhook | None:
        """The created webhook, or None when Jira answers without it (some versions)."""
        return _written(self._call("POST", WEBHOOKS, body))

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> Webhook | None:
        return _written(self._call("PUT", f"{WEBHOOKS}/{webhook_id}", body))

    def delete_webhook(self, webhook_id: str) -> None:
        self._call("DELETE", f"{WEBHOOKS}/{webhook_id}")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._once(method, path, body=body, needs=MANAGE_WEBHOOKS)
        except UserNotFound as exc:
            if method in ("GET", "POST"):
                raise ConfigError(
                    f"Jira has no webhook REST resource at {self._http.base_url}{WEBHOOKS}"
                    " (404): is ASSETSYNC_JIRA_URL Jira's base URL?"
                ) from exc
            raise

    # -- HTTP ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        if self._patience is None:
            return self._once("GET", path, params=params)
        delays, waited, attempt = self._patience.delays, 0.0, 0
        while True:
            try:
                return self._once("GET", path, params=params)
            except JiraUnavailable as exc:
                delay = max(delays[min(attempt, len(delays) - 1)], exc.retry_after or 0.0)
                if waited + delay > sum(delays):
                    raise
                log.info("%s; asking again in %.1fs", exc, delay)
                self._patience.sleep(delay)
                waited, attempt = waited + delay, attempt + 1

    def _once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        needs: str = READ_USERS,
    ) -> Any:
        """One request; its answer's JSON (None for an empty one)."""
        started, status = time.monotonic(), "error"
        what = path if method == "GET" else f"{method} {path}"
        try:
            with self._http.stream(method, path, params=params, json=body) as response:
                status = str(response.status_code)
                answers.raise_for_status(response.status_code, response.headers, what, needs=needs)
                content = self._read_bounded(response, what, started)
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise JiraUnavailable(f"Jira timed out on {what}") from exc
        except httpx.TransportError as exc:
            raise JiraUnavailable(f"cannot reach Jira: {exc}") from exc
        finally:
            if self._observe is not None:
                self._observe(path, status, time.monotonic() - started)
        log.debug("%s -> %s in %.3fs", what, status, time.monotonic() - started)
        if not content and method != "GET":
            return None
        try:
            return parse_json(content)
        except (ValueError, RecursionError) as exc:
            raise JiraUnavailable(f"Jira sent a non-JSON answer for {what}") from exc

    def _read_bounded(self, response: httpx.Response, what: str, started: float) -> bytes:
        """The body, or an error once it outgrows ``max_response_bytes`` (counted after
        decompression) or the request outlasts ``deadline``: the read timeout alone lets
        an answer that trickles in forever, a byte at a time, go on forever."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise JiraRejected(
                f"Jira's answer to {what} is {declared} bytes, over the limit of"
                f" {self._max_bytes} (ASSETSYNC_JIRA_MAX_RESPONSE_BYTES)"
            )
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self._max_bytes:
                raise JiraRejected(
                    f"Jira's answer to {what} is over the limit of {self._max_bytes} bytes"
                    " (ASSETSYNC_JIRA_MAX_RESPONSE_BYTES)"
                )
            if time.monotonic() - started > self._deadline:
                raise JiraUnavailable(f"Jira took over {self._deadline:g}s to answer {what}")
        return bytes(body)


def _written(answer: Any) -> Webhook | None:
    return Webhook.from_json(answer) if isinstance(answer, dict) and answer.get("self") else None
