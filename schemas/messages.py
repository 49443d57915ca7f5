"""Wire models for every message assetsync puts on or takes off RabbitMQ.

Every body is a JSON object with ``type`` (equal to the routing key) and
``schema_version``. ``user-logged-in``, ``user-changed`` and ``bulk-sync-requested`` come
from outside (a Jira plugin, the security-log source, the webhook receiver, the admin
script); ``user-sync`` is internal: one user's Jira snapshot, fanned out by a bulk run. JSON Schema files generated from these models live beside
this module for producers that are not written in Python (``python -m schemas``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

USER_LOGGED_IN = "user-logged-in"
BULK_SYNC_REQUESTED = "bulk-sync-requested"
USER_SYNC = "user-sync"
USER_CHANGED = "user-changed"
USER_CHANGES = ("created", "updated", "deleted")


def _storable(text: str) -> str:
    # PostgreSQL text holds neither NUL nor half a surrogate pair.
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must not contain a lone surrogate") from None
    return text


Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_storable)]
# A Jira user's fields come from outside and are stored and logged: bounded, and empty
# where Jira sends empty strings.
Short = Annotated[str, Field(max_length=255), AfterValidator(_storable)]
Text = Annotated[str, Field(max_length=1000), AfterValidator(_storable)]


class _Message(BaseModel):
    # Unknown keys are rejected: a misspelt "userName" must fail loudly, not sync nobody.
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserLoggedIn(_Message):
    """A user logged in to Jira. Exactly one of the three identifiers is given."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("username", "user_key", "account_id")
            ]
        }
    )

    type: Literal["user-logged-in"] = "user-logged-in"
    schema_version: Literal[1] = 1
    event_id: UUID
    occurred_at: AwareDatetime
    username: Name | None = Field(default=None, description="Data Center username")
    user_key: Name | None = Field(
        default=None, description="Data Center user key (stable across renames)"
    )
    account_id: Name | None = Field(default=None, description="Jira Cloud accountId")

    @model_validator(mode="after")
    def _exactly_one_identifier(self) -> UserLoggedIn:
        given = [n for n in ("username", "user_key", "account_id") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("exactly one of username, user_key, account_id must be given")
        return self


class BulkSyncRequested(_Message):
    """An admin asked to sync every Jira user matching the filters (none: all users)."""

    type: Literal["bulk-sync-requested"] = "bulk-sync-requested"
    schema_version: Literal[1] = 1
    request_id: UUID
    requested_at: AwareDatetime
    requested_by: Name
    username_prefix: Name | None = None
    groups: list[Name] = Field(default_factory=list, max_length=100)
    dry_run: bool = False

    def run_key(self) -> str:
        """What makes two requests the same run: the same dry run, the same prefix as
        matched (lower-cased, as the scan compares usernames), the same set of groups
        (in any order, each once; as written: whether Jira matches group names
        regardless of case is its own affair). Who asked and when do not count."""
        prefix = None if self.username_prefix is None else self.username_prefix.lower()
        return json.dumps([self.dry_run, prefix, sorted(set(self.groups))], ensure_ascii=False)


class UserChanged(_Message):
    """Jira reported that a user was created, updated or deleted (an admin webhook).

    Only the identity travels: events may arrive late, twice or out of order, so the
    consumer fetches the user's current data from Jira instead of trusting a snapshot,
    and treats ``deleted`` as a hint that Jira must confirm (404) before anything is
    marked missing. Data Center gives ``user_key`` (stable) and usually ``username``
    (as it was when the event was sent); Cloud gives ``account_id`` alone.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["account_id"],
                    "properties": {
                        "account_id": {"type": "string"},
                        "user_key": {"type": "null"},
                        "username": {"type": "null"},
                    },
                },
                {
                    "properties": {"account_id": {"type": "null"}},
                    "anyOf": [
                        {"required": [name], "properties": {name: {"type": "string"}}}
                        for name in ("user_key", "username")
                    ],
                },
            ]
        }
    )

    type: Literal["user-changed"] = "user-changed"
    schema_version: Literal[1] = 1
    event_id: UUID = Field(
        description="the same for every delivery of one Jira webhook when Jira names it"
    )
    occurred_at: AwareDatetime = Field(
        description="when Jira says it happened (its timestamp), else when it was received"
    )
    change: Literal["created", "updated", "deleted"]
    user_key: Name | None = Field(default=None, description="Data Center user key")
    username: Name | None = Field(
        default=None, description="Data Center username when the event was sent"
    )
    account_id: Name | None = Field(default=None, description="Jira Cloud accountId")
    delivery: Annotated[str, Field(max_length=255)] | None = Field(
        default=None, description="Jira's delivery id (X-Atlassian-Webhook-Identifier)"
    )

    @model_validator(mode="after")
    def _one_identity(self) -> UserChanged:
        data_center = bool(self.user_key or self.username)
        if bool(self.account_id) == data_center:
            raise ValueError("give account_id (Cloud) or user_key and/or username (Data Center)")
        return self


class JiraUser(BaseModel):
    """The fields of a Jira user that assetsync reads, for both Jira flavours.

    ``jira_id`` is the stable identity: the user key on Data Center, the accountId on
    Cloud. Usernames change on rename; the identity does not.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jira_id: Name
    name: Short | None = None
    key: Short | None = None
    account_id: Short | None = None
    account_type: Short | None = None
    display_name: Text | None = None
    email_address: Text | None = None
    active: bool = True
    time_zone: Short | None = None
    locale: Short | None = None
    avatar_url: Text | None = None
    groups: tuple[Short, ...] | None = Field(
        default=None,
        max_length=10_000,
        description="null when the snapshot was taken without groups",
    )


class UserSync(_Message):
    """Internal: sync one user from a Jira snapshot taken at ``fetched_at``."""

    type: Literal["user-sync"] = "user-sync"
    schema_version: Literal[1] = 1
    run_id: UUID
    dry_run: bool = False
    fetched_at: AwareDatetime
    user: JiraUser


Message = Annotated[
    UserLoggedIn | BulkSyncRequested | UserSync | UserChanged, Field(discriminator="type")
]
MODELS: dict[str, type[_Message]] = {
    USER_LOGGED_IN: UserLoggedIn,
    BULK_SYNC_REQUESTED: BulkSyncRequested,
    USER_SYNC: UserSync,
    USER_CHANGED: UserChanged,
}
SUPPORTED_VERSIONS: dict[str, frozenset[int]] = {name: frozenset({1}) for name in MODELS}


def to_body(message: _Message) -> bytes:
    """Serialise a message as the UTF-8 JSON body that goes on the wire."""
    return message.model_dump_json().encode()


def user_sync_bodies(
    *, run_id: UUID, dry_run: bool, fetched_at: datetime, users: Sequence[JiraUser]
) -> list[bytes]:
    """``to_body(UserSync(...))`` for each user of one page, byte for byte, faster.

    A bulk run sends one message per user from a single thread; building a model per
    user was a fifth of that thread's time. The envelope is the same for the whole
    page and ``user`` is its last field, so it is serialised once and each user's JSON
    is wrapped in it.
    """
    if not users:
        return []
    first = to_body(UserSync(run_id=run_id, dry_run=dry_run, fetched_at=fetched_at, user=users[0]))
    tail = users[0].model_dump_json().encode() + b"}"
    assert first.endswith(tail), "user must stay the last field of UserSync"
    head = first[: -len(tail)]
    return [first, *(head + u.model_dump_json().encode() + b"}" for u in users[1:])]


def utc_now() -> datetime:
    return datetime.now(UTC)
