"""The synchronization initiation form, as pure functions: a submitted form becomes the
``bulk-sync-requested`` message the admin script would publish, or one sentence saying
what is wrong with it. Whether its groups exist is Jira's to say (``pages.start_run``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import uuid4

from pydantic import ValidationError

from schemas.messages import BulkSyncRequested, utc_now

MAX_GROUPS = 100  # what the message allows


class Refused(Exception):
    """The run cannot be started as asked; the message is one sentence."""


@dataclass(frozen=True)
class StartForm:
    prefix: str = ""
    groups: str = ""
    dry_run: bool = False
    error: str = ""

    @classmethod
    def of(cls, form: Mapping[str, str]) -> StartForm:
        return cls(
            prefix=form.get("prefix", ""),
            groups=form.get("groups", ""),
            dry_run=form.get("dry_run") == "on",
        )

    def refused(self, error: str) -> StartForm:
        return replace(self, error=error)


def group_names(text: str) -> list[str]:
    """Comma-separated group names, trimmed, each once, in the order given."""
    names = [g.strip() for g in text.split(",")]
    if text.strip() and not all(names):
        raise Refused("Groups: a group name between two commas is empty")
    return list(dict.fromkeys(n for n in names if n))


def request(start: StartForm, *, requested_by: str) -> BulkSyncRequested:
    """The message for ``start``, as ``python -m producers.bulk_sync`` would build it."""
    groups = group_names(start.groups)
    if len(groups) > MAX_GROUPS:
        raise Refused(f"Groups: at most {MAX_GROUPS} groups per run")
    try:
        return BulkSyncRequested(
            request_id=uuid4(),
            requested_at=utc_now(),
            requested_by=requested_by,
            username_prefix=start.prefix.strip() or None,
            groups=groups,
            dry_run=start.dry_run,
        )
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        label = {"username_prefix": "Username prefix", "groups": "Groups"}.get(
            str(problem["loc"][0]), "The request"
        )
        raise Refused(f"{label}: {problem['msg']}") from None


def described(message: BulkSyncRequested) -> dict[str, Any]:
    """What the audit log says was asked for."""
    return {
        "username_prefix": message.username_prefix,
        "groups": list(message.groups),
        "dry_run": message.dry_run,
    }
