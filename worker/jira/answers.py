"""Jira's answers, read: status codes classified into the exception tree, user JSON
turned into snapshots, pages and webhooks checked for shape. Pure functions of what
Jira sent; no I/O.

Jira's error text is localized, so only status codes are read, never ``errorMessages``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from schemas.messages import JiraUser
from worker.errors import (
    BadJiraUser,
    JiraAuthError,
    JiraCaptcha,
    JiraRejected,
    JiraUnavailable,
    UserNotFound,
)

Flavor = Literal["datacenter", "cloud"]


def raise_for_status(status: int, headers: Mapping[str, str], what: str, *, needs: str) -> None:
    """Classify an HTTP status: 401/403 mean the deployment's credentials are wrong (or
    lack ``needs``), 404 permanent, 429/5xx/409 transient (with ``Retry-After``), any
    other 4xx permanent.

    :param what: the request, for the message (``/rest/api/2/user``, ``PUT …``).
    :param needs: what the account must be allowed to do, for a 403's message.
    """
    if status < 400:
        return
    if status in (401, 403) and _captcha(headers):
        raise JiraCaptcha(
            f"Jira answered {status} to {what} without checking the password: after failed"
            " sign-ins it wants a CAPTCHA answered; sign in to Jira once in a browser"
        )
    if status in (401, 403):
        raise JiraAuthError(
            f"Jira answered {status} to {what}: check ASSETSYNC_JIRA_USERNAME/ASSETSYNC_JIRA_TOKEN"
            f" and that the account may {needs}"
        )
    if status == 404:
        raise UserNotFound(f"Jira answered 404 to {what}")
    if status == 429 or status >= 500 or status == 409:
        # Cloud answers 409 to requests that ran too long; 429 and 503 are rate limits.
        raise JiraUnavailable(f"Jira answered {status} to {what}", retry_after=retry_after(headers))
    raise JiraRejected(f"Jira answered {status} to {what}")


def _captcha(headers: Mapping[str, str]) -> bool:
    # Data Center's Seraph says AUTHENTICATED_FAILED for a wrong password, and
    # AUTHENTICATION_DENIED (with the reason CAPTCHA_CHALLENGE) once it wants a CAPTCHA.
    reason = headers.get("x-seraph-loginreason", "")
    return "AUTHENTICATION_DENIED" in reason or "CAPTCHA" in headers.get(
        "x-authentication-denied-reason", ""
    )


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


def to_user(data: Any, *, flavor: Flavor) -> JiraUser:
    """Jira's user JSON (either flavour) as a snapshot.

    :raises BadJiraUser: the JSON is not a user this service can store (no identity,
        wrong types, text too long or holding what PostgreSQL cannot store).
    """
    cloud = flavor == "cloud"
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


def listing(answer: Any, what: str) -> list[Any]:
    """A list of users, checked: anything else is not a listing (a proxy's page, say)."""
    if not isinstance(answer, list):
        raise JiraUnavailable(f"Jira sent {type(answer).__name__} for {what}, not a list of users")
    return answer


def page(answer: Any, what: str) -> dict[str, Any]:
    """A paged answer (``values``, ``isLast``...), checked for shape."""
    if not isinstance(answer, dict):
        raise JiraUnavailable(f"Jira sent {type(answer).__name__} for {what}, not a page")
    listing(answer.get("values", []), what)
    return answer


@dataclass(frozen=True)
class Webhook:
    """One of Jira's admin webhooks, as its REST resource describes it."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    enabled: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Webhook:
        self_url = str(data.get("self") or "")
        raw_events = data.get("events")
        events = raw_events if isinstance(raw_events, list) else []
        return cls(
            id=self_url.rstrip("/").rpartition("/")[2],
            name=str(data.get("name") or ""),
            url=str(data.get("url") or ""),
            events=tuple(sorted(str(e) for e in events)),
            enabled=data.get("enabled", True) not in (False, "false"),
        )


def webhooks(answer: Any) -> list[Webhook]:
    """The webhooks of a listing: Cloud pages them (``values``), Data Center does not."""
    items = answer.get("values", []) if isinstance(answer, dict) else answer
    return [Webhook.from_json(h) for h in items or [] if isinstance(h, dict)]
