"""Jira's REST API over httpx: reading users from Data Center (v2) or Cloud (v3).

Errors are classified here and nowhere else: 404/400 are permanent, 401/403 mean the
deployment's credentials are wrong, 429/5xx/409 and network trouble are transient and
carry ``Retry-After``. Jira's error text is localized, so only status codes are read.
"""

from __future__ import annotations

import copy
import email.utils
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from schemas.messages import JiraUser
from worker.decoding import parse_json
from worker.errors import (
    BadJiraUser,
    ConfigError,
    InvalidMessage,
    JiraAuthError,
    JiraRejected,
    JiraUnavailable,
    UserNotFound,
)

log = logging.getLogger(__name__)

Flavor = Literal["datacenter", "cloud"]
RefKind = Literal["username", "user_key", "account_id"]


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
    """One ``httpx.Client`` per worker replica; timeouts always on.

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

    def close(self) -> None:
        self._http.close()

    def with_patience(self, patience: Patience) -> JiraClient:
        """This client (same connections), waiting out transient failures: for long
        scans, where one failed request would otherwise cost the whole attempt."""
        patient = copy.copy(self)
        patient._patience = patience
        return patient

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
            self._flavor = "cloud" if info.get("deploymentType") == "Cloud" else "datacenter"
        return self._flavor

    @property
    def api(self) -> str:
        return "/rest/api/3" if self.flavor == "cloud" else "/rest/api/2"

    def check(self) -> str:
        """Verify the URL and credentials; return a line that says what we talk to."""
        try:
            me = self._get(f"{self.api}/myself")
        except UserNotFound as exc:
            raise ConfigError(
                f"ASSETSYNC_JIRA_URL: {self._http.base_url} does not answer like Jira"
                " (no /rest/api/.../myself there; is a context path such as /jira missing?)"
            ) from exc
        who = me.get("name") or me.get("emailAddress") or me.get("accountId") or "?"
        return f"Jira {self.flavor} at {self._http.base_url} as {who}"

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
            data = self._get(f"{self.api}/user", params)
        except UserNotFound:
            raise UserNotFound(f"Jira has no user with {ref.kind} {ref.value!r}") from None
        return self.to_user(data)

    def to_user(self, data: Any) -> JiraUser:
        """Jira's user JSON (either flavour) as a snapshot.

        :raises BadJiraUser: the JSON is not a user this service can store (no identity,
            wrong types, text too long or holding what PostgreSQL cannot store).
        """
        cloud = self.flavor == "cloud"
        identity = "accountId" if cloud else "key"
        try:
            groups = data.get("groups")
            return JiraUser(
                jira_id=data[identity],
                name=None if cloud else data.get("name"),
                key=None if cloud else data.get("key"),
                account_id=data.get("accountId") if cloud else None,
                account_type=data.get("accountType"),
                display_name=data.get("displayName"),
                email_address=data.get("emailAddress"),
                active=_flag(data.get("active", True)),
                time_zone=data.get("timeZone"),
                locale=data.get("locale"),
                avatar_url=(data.get("avatarUrls") or {}).get("48x48"),
                groups=tuple(g["name"] for g in groups.get("items", [])) if groups else None,
            )
        except (ValidationError, KeyError, TypeError, AttributeError, ValueError) as exc:
            ident = data.get(identity) if isinstance(data, Mapping) else None
            raise BadJiraUser(
                f"Jira sent a user ({identity} {str(ident)[:80]!r}) that cannot be stored:"
                f" {_why_bad(exc)}"
            ) from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._get(path, params)

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        if self._patience is None:
            return self._get_once(path, params)
        delays, waited, attempt = self._patience.delays, 0.0, 0
        while True:
            try:
                return self._get_once(path, params)
            except JiraUnavailable as exc:
                delay = max(delays[min(attempt, len(delays) - 1)], exc.retry_after or 0.0)
                if waited + delay > sum(delays):
                    raise
                log.info("%s; asking again in %.1fs", exc, delay)
                self._patience.sleep(delay)
                waited, attempt = waited + delay, attempt + 1

    def _get_once(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        started, status = time.monotonic(), "error"
        try:
            with self._http.stream("GET", path, params=params) as response:
                status = str(response.status_code)
                _raise_for_status(response, path)
                body = self._read_bounded(response, path, started)
        except httpx.TimeoutException as exc:
            status = "timeout"
            raise JiraUnavailable(f"Jira timed out on {path}") from exc
        except httpx.TransportError as exc:
            raise JiraUnavailable(f"cannot reach Jira: {exc}") from exc
        finally:
            if self._observe is not None:
                self._observe(path, status, time.monotonic() - started)
        log.debug("GET %s -> %s in %.3fs", path, status, time.monotonic() - started)
        try:
            return parse_json(body)
        except (ValueError, RecursionError) as exc:
            raise JiraUnavailable(f"Jira sent a non-JSON answer for {path}") from exc

    def _read_bounded(self, response: httpx.Response, path: str, started: float) -> bytes:
        """The body, or an error once it outgrows ``max_response_bytes`` (counted after
        decompression) or the request outlasts ``deadline``: the read timeout alone lets
        an answer that trickles in forever, a byte at a time, go on forever."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise JiraRejected(
                f"Jira's answer to {path} is {declared} bytes, over the limit of"
                f" {self._max_bytes} (ASSETSYNC_JIRA_MAX_RESPONSE_BYTES)"
            )
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self._max_bytes:
                raise JiraRejected(
                    f"Jira's answer to {path} is over the limit of {self._max_bytes} bytes"
                    " (ASSETSYNC_JIRA_MAX_RESPONSE_BYTES)"
                )
            if time.monotonic() - started > self._deadline:
                raise JiraUnavailable(f"Jira took over {self._deadline:g}s to answer {path}")
        return bytes(body)


def _flag(value: Any) -> bool:
    """Jira's ``active``: a JSON boolean, or (some versions, in some places) a string."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ValueError(f"active is {str(value)[:20]!r}, not a boolean")


def _why_bad(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'user'}: {first['msg']}"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]}"
    return str(exc)[:200] or type(exc).__name__


def _raise_for_status(response: httpx.Response, path: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (401, 403):
        raise JiraAuthError(
            f"Jira answered {status} to {path}: check ASSETSYNC_JIRA_USERNAME/ASSETSYNC_JIRA_TOKEN"
            " and that the account may browse users"
        )
    if status == 404:
        raise UserNotFound(f"Jira answered 404 to {path}")
    if status == 429 or status >= 500 or status == 409:
        # Cloud answers 409 to requests that ran too long; 429 and 503 are rate limits.
        raise JiraUnavailable(
            f"Jira answered {status} to {path}", retry_after=retry_after(response.headers)
        )
    raise JiraRejected(f"Jira answered {status} to {path}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header, given as seconds or as an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
