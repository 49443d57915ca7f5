"""What a webhook delivery means, without any I/O: is it signed, and which user changed.

Jira signs admin webhooks that have a secret (Cloud, and Data Center 10+) WebSub style:
``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. The body is
``{"timestamp", "webhookEvent", "user": {...}}``; Data Center's user has ``key`` and
``name``, Cloud's has ``accountId`` (and ``accountType``). Only the identity is kept:
the worker fetches the user's current data from Jira.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import reprlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas.messages import UserChanged
from worker.errors import InvalidMessage
from worker.text import printable

SIGNATURE_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-atlassian-webhook-identifier"
EVENTS = {"user_created": "created", "user_updated": "updated", "user_deleted": "deleted"}
# Cloud accounts that are not people: bulk runs skip them too.
SKIPPED_ACCOUNT_TYPES = frozenset({"app", "customer"})
TEXT_FIELDS = ("accountType", "accountId", "key", "name")
MAX_DELIVERY_ID = 255
# Delivery ids name events across receiver replicas: the same id gives the same event_id.
_EVENT_NAMESPACE = uuid.UUID("6f1d3c52-93a8-4c57-b2f4-8e0d5a7c9b14")
# Jira's timestamp is trusted only inside this window; anything else is a bad clock.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_CLOCK_SKEW = timedelta(days=1)
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 2, 60, 60, 4, 4


class BadDelivery(InvalidMessage):
    """The body cannot be turned into a message; ``str()`` is a one-line reason."""


@dataclass(frozen=True)
class Skipped:
    """A well-formed event that needs no sync (an app or customer account)."""

    reason: str


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_problem(secret: bytes, body: bytes, header: str | None) -> str | None:
    """Why the signature does not prove the body came from Jira; None when it does."""
    if not header:
        return "no X-Hub-Signature header (is the secret set on the Jira webhook?)"
    method, _, digest = header.strip().partition("=")
    if method.lower() != "sha256" or not digest:
        return "X-Hub-Signature is not of the form sha256=<hex>"
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    # compare_digest over equal-length ASCII: no timing hint about where they differ.
    if not hmac.compare_digest(
        expected.encode(), digest.strip().lower().encode("ascii", "replace")
    ):
        return "X-Hub-Signature does not match the body (wrong secret?)"
    return None


def delivery_id(header: str | None) -> str | None:
    """Jira's id of this delivery (the same on each retry), if given and sane."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if len(value) > MAX_DELIVERY_ID or not value.isprintable():
        raise BadDelivery("X-Atlassian-Webhook-Identifier is too long or not printable")
    return value


def parse(body: bytes, *, delivery: str | None, received_at: datetime) -> UserChanged | Skipped:
    """Turn one delivery's body into a ``user-changed`` message.

    :raises BadDelivery: malformed JSON, an event that is not a user event, no identity.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadDelivery("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadDelivery("body is not a JSON object")
    event = data.get("webhookEvent")
    if not isinstance(event, str) or event not in EVENTS:
        raise BadDelivery(f"not a user event: webhookEvent {_short(event)}")
    user = data.get("user")
    if not isinstance(user, dict):
        raise BadDelivery(f"{event} without a user object")
    for field in TEXT_FIELDS:  # Jira sends each as text, or leaves it out
        if user.get(field) is not None and not isinstance(user[field], str):
            raise BadDelivery(f"user.{field} is not a string: {_short(user[field])}")
    if user.get("accountType") in SKIPPED_ACCOUNT_TYPES:
        return Skipped(f"{user['accountType']} account {_short(user.get('accountId'))}")
    identity = _identity(user)
    if not identity:
        raise BadDelivery(f"{event} names no user (no accountId, key or name)")
    event_id = uuid.uuid5(_EVENT_NAMESPACE, delivery) if delivery else uuid.uuid4()
    try:
        return UserChanged(
            event_id=event_id,
            occurred_at=_occurred_at(data.get("timestamp"), received_at),
            change=EVENTS[event],
            delivery=delivery,
            **identity,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "user"
        raise BadDelivery(
            f"unusable user identity: {where}: {printable(first['msg'], 200)}"
        ) from None


def _identity(user: dict[str, Any]) -> dict[str, str]:
    account_id = user.get("accountId")
    if isinstance(account_id, str) and account_id:
        return {"account_id": account_id}  # Cloud: key and name are gone (GDPR)
    found = {}
    for field, name in (("key", "user_key"), ("name", "username")):
        value = user.get(field)
        if isinstance(value, str) and value:
            found[name] = value
    return found


def _occurred_at(timestamp: Any, received_at: datetime) -> datetime:
    # bool is an int in Python, not a timestamp.
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        try:
            at = datetime.fromtimestamp(timestamp / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return received_at
        if _EARLIEST <= at <= received_at + _CLOCK_SKEW:
            return at
    return received_at


def _short(value: Any, limit: int = 60) -> str:
    """A value from the request, quoted and cut, fit for a one-line reason (however
    large or deeply nested it is: ``reprlib`` stops early)."""
    return printable(_REPR.repr(value), limit)
