"""The one settings model: every ``ASSETSYNC_*`` setting of every component.

Each command builds it once at start (``load_settings``, in its ``__main__``) and passes
down what the parts it builds need; nothing reads the environment elsewhere. An optional
env file (``--env-file``) supplies the same names; real environment variables win over
it. A bad value stops any command with the same one line and exit code 78.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from schemas.topology import DEFAULT_RETRY_DELAYS, Topology
from worker.errors import ConfigError

# Jira user fields that can be mapped, and the kind of value each yields.
JIRA_FIELDS: dict[str, str] = {
    "name": "text",  # username (Cloud has none: its e-mail address, else its accountId)
    "key": "identity",
    "accountId": "identity",
    "displayName": "text",
    "emailAddress": "text",
    "active": "boolean",
    "timeZone": "text",
    "locale": "text",
    "groups": "text",
    "avatarUrl": "text",
}
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class MissingLimit:
    """How many assets one run may mark missing: a count, or a percentage of the asset
    type's assets (rounded down).

    :param text: the setting as written, for messages (``50``, ``5%``).
    """

    text: str
    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> MissingLimit:
        found = _LIMIT.match(text)
        if found is None:
            raise ValueError("must be a count such as 50 or a percentage such as 5%")
        number, percent = found.groups()
        if percent:
            if float(number) > 100:
                raise ValueError("a percentage cannot be more than 100%")
            return cls(text=text.strip(), percent=float(number))
        if "." in number:
            raise ValueError("a count must be a whole number (or write a percentage: 5%)")
        return cls(text=text.strip(), count=int(number))

    def of(self, assets: int) -> int:
        """The largest number of assets a run may mark missing, out of ``assets``."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        # A hair of tolerance so that 5% of 200 is 10, not 9.999... rounded down.
        return math.floor(assets * self.percent / 100 + 1e-9)


DEFAULT_MISSING_LIMIT = MissingLimit.parse("5%")


DEFAULT_FIELD_MAP = {
    "name": "Username",
    "displayName": "Full name",
    "emailAddress": "E-mail",
    "active": "Active",
}


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# Which commands read a setting (``assetsync COMMAND``; the ``python -m`` forms are the
# same programs), for the settings reference. ``webhooks`` also means its ``register``,
# ``unregister`` and ``status``; ``worker`` its ``check``, ``healthcheck``, ``rotate-key``.
COMMANDS = (
    "worker",
    "migrate",
    "sync",
    "login",
    "webhooks",
    "security-log",
    "dead-letters",
    "console",
)
EVERY_COMMAND = COMMANDS
BROKER = ("worker", "sync", "login", "webhooks", "security-log", "dead-letters", "console")
JIRA = ("worker", "webhooks", "console")
SYNC = ("worker", "console")  # the console shows and saves them; workers obey them
WORKER = ("worker",)
CONSOLE = ("console",)
RECEIVER = ("webhooks",)
SECURITY_LOG = ("security-log",)


def setting(
    default: Any = PydanticUndefined,
    *,
    group: str,
    doc: str,
    read_by: tuple[str, ...],
    shown_default: str | None = None,
    **constraints: Any,
) -> Any:
    """A field of ``Settings``. Its ``doc``, ``group`` and ``read_by`` (the commands that
    read it, from ``COMMANDS``) make the settings reference, ``docs/settings.md``
    (``python -m worker.settings_reference``; a test fails when the page and this model
    differ). ``shown_default`` replaces the default in the reference where the value
    alone would mislead (a default that depends on the asset store)."""
    extra: dict[str, Any] = {"group": group, "read_by": list(read_by)}
    if shown_default is not None:
        extra["shown_default"] = shown_default
    return Field(default, description=doc, json_schema_extra=extra, **constraints)


class Settings(BaseSettings):
    """Every ``ASSETSYNC_*`` setting of every component: the worker, the producers, the
    webhook receiver, the security-log source, the console. Each process builds it once
    (``load_settings``) and takes the part it needs: a setting is checked the same way
    wherever it is read."""

    model_config = SettingsConfigDict(env_prefix="ASSETSYNC_", extra="ignore")

    # RabbitMQ
    amqp_url: SecretStr = setting(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        group="RabbitMQ",
        read_by=BROKER,
        doc="RabbitMQ (write vhost `/` as `%2F`)",
    )
    amqp_prefix: str = setting(
        "assetsync",
        group="RabbitMQ",
        read_by=BROKER,
        doc="prefix of every exchange and queue name (letters, digits, `_ . -`)",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    heartbeat: int = setting(
        30, group="RabbitMQ", read_by=WORKER, doc="AMQP heartbeat, seconds", ge=0
    )
    max_message_bytes: int = setting(
        1024 * 1024,
        group="RabbitMQ",
        read_by=WORKER,
        doc="larger message bodies are dead-lettered unread",
        ge=1024,
    )
    login_prefetch: int = setting(
        10,
        group="RabbitMQ",
        read_by=WORKER,
        doc="login events in flight per replica",
        ge=1,
        le=1000,
    )
    batch_size: int = setting(
        200,
        group="RabbitMQ",
        read_by=WORKER,
        doc="per-user bulk messages upserted per transaction",
        ge=1,
        le=5000,
    )
    retry_delays: tuple[float, ...] = setting(
        DEFAULT_RETRY_DELAYS,
        group="RabbitMQ",
        read_by=WORKER,
        doc="JSON list: seconds before each retry of a transient failure; then dead-lettered",
    )

    # PostgreSQL
    database_url: SecretStr = setting(
        SecretStr("postgresql://postgres@127.0.0.1:5432/assetsync"),
        group="PostgreSQL",
        read_by=("worker", "migrate", "sync", "console"),
        doc="the asset store; created by `migrate` if missing; a failover pair names both"
        " hosts (`...@db-a:5432,db-b:5432/assetsync?target_session_attrs=read-write`, see"
        " Database failover)",
    )
    database_timeout: float = setting(
        60.0,
        group="PostgreSQL",
        read_by=("worker", "console"),
        doc="seconds any one round trip to PostgreSQL may take; a silent database is noticed"
        " within it",
        gt=0,
        le=3600,
    )

    # Jira
    jira_url: str | None = setting(
        None,
        group="Jira",
        read_by=JIRA,
        doc="Jira base URL (required by the worker, the console and `webhooks register` /"
        " `unregister` / `status`)",
    )
    jira_username: str | None = setting(
        None,
        group="Jira",
        read_by=JIRA,
        doc="basic-auth user (Cloud: the account e-mail); unset or empty = the token is a"
        " personal access token (Bearer)",
    )
    jira_token: SecretStr | None = setting(
        None, group="Jira", read_by=JIRA, doc="API token or personal access token"
    )
    jira_flavor: Literal["auto", "datacenter", "cloud"] = setting(
        "auto",
        group="Jira",
        read_by=JIRA,
        doc="`auto` (from the `deploymentType` Jira's `serverInfo` gives), `datacenter` or `cloud`",
    )
    jira_timeout: float = setting(
        10.0,
        group="Jira",
        read_by=JIRA,
        doc="seconds, for connecting and for each read",
        gt=0,
        le=60,
    )
    jira_deadline: float = setting(
        60.0,
        group="Jira",
        read_by=JIRA,
        doc="seconds a whole Jira request may take, answer included",
        gt=0,
        le=600,
    )
    jira_max_response_bytes: int = setting(
        32 * 1024 * 1024,
        group="Jira",
        read_by=JIRA,
        doc="larger Jira answers are refused (32 MiB; counted after decompression)",
        ge=64 * 1024,
    )
    jira_ca_bundle: FilePath | None = setting(
        None,
        group="Jira",
        read_by=JIRA,
        doc="a CA bundle to check Jira's certificate against (default: the system's)",
    )
    jira_page_size: int = setting(
        1000,
        group="Jira",
        read_by=WORKER,
        doc="users per Jira page in bulk scans (group pages: 50)",
        ge=1,
        le=1000,
    )

    # The console
    console_bind: str = setting(
        "127.0.0.1",
        group="Console",
        read_by=CONSOLE,
        doc="the address `assetsync console` listens on",
    )
    console_port: int = setting(
        8080,
        group="Console",
        read_by=CONSOLE,
        doc="its port (0: a free one, logged)",
        ge=0,
        le=65535,
    )
    console_session_minutes: float = setting(
        60.0,
        group="Console",
        read_by=CONSOLE,
        doc="a console session ends after this many minutes without use",
        gt=0,
        le=7 * 24 * 60,
    )
    console_webhooks_url: str | None = setting(
        None,
        group="Console",
        read_by=CONSOLE,
        doc="the webhook receiver's base URL (e.g. `http://assetsync-webhooks`), for the"
        " last delivery on the console's Health page; unset, not shown",
    )
    console_security_log_urls: str | None = setting(
        None,
        group="Console",
        read_by=CONSOLE,
        doc="the security-log sources' status URLs, comma-separated, one per Jira node (e.g."
        " `http://jira-1:9102,http://jira-2:9102`, their `ASSETSYNC_SECURITY_LOG_LISTEN`), for"
        " their positions on the console's Health page; unset, not shown",
    )
    console_secret: SecretStr | None = setting(
        None,
        group="Console",
        read_by=CONSOLE,
        doc="key (16+ bytes) signing the console's session cookies; unset, a random key per"
        " process: sessions end when it restarts and replicas cannot share them",
    )

    # Sync (what the admin page configures)
    sync_on_login: bool = setting(
        True,
        group="Sync",
        read_by=SYNC,
        doc="when false, login events are logged and acknowledged, not synced",
    )
    asset_type: str = setting(
        "Employee", group="Sync", read_by=SYNC, doc="the asset type of user assets"
    )
    folder: str = setting(
        "Employees", group="Sync", read_by=SYNC, doc="target folder path, e.g. `People/Staff`"
    )
    alphabetical_subfolders: bool = setting(
        True,
        group="Sync",
        read_by=SYNC,
        doc="file under the first letter of the display name (else the username),"
        " upper-cased; non-letters go to `#`",
    )
    user_field: str = setting(
        "User",
        group="Sync",
        read_by=SYNC,
        shown_default="the asset type's unique field of type user",
        doc="the unique field of type user that matches Jira users; unset, the asset type's"
        " own (`User` in the default scheme)",
    )
    field_map: dict[str, str] = setting(
        default_factory=lambda: dict(DEFAULT_FIELD_MAP),
        group="Sync",
        read_by=SYNC,
        doc="JSON: Jira user field -> asset field. Jira fields: `name` (mandatory), `key`,"
        " `accountId`, `displayName`, `emailAddress`, `active`, `timeZone`, `locale`,"
        " `groups`, `avatarUrl`. Fields not mapped are never touched.",
    )
    missing_users: Literal["mark", "ignore"] = setting(
        "mark",
        group="Sync",
        read_by=SYNC,
        doc="unfiltered bulk runs: `mark` assets whose Jira user is confirmed gone (404) as"
        " missing (Active false), or `ignore` them (only counted)",
    )
    missing_limit: str = setting(
        DEFAULT_MISSING_LIMIT.text,
        group="Sync",
        read_by=SYNC,
        doc="the most assets one run may mark missing: a count (`50`) or a percentage of the"
        " asset type's assets (`5%`, rounded down); above it the run marks none and fails",
    )
    bulk_queue_ahead: int = setting(
        50_000,
        group="Sync",
        read_by=WORKER,
        doc="per-user messages a bulk run's fan-out lets wait in the user-sync queue: past"
        " it the scan pauses before its next page until the workers have caught up (a"
        " run of millions does not fill RabbitMQ); `0`: no bound",
        ge=0,
    )
    run_retention_days: float = setting(
        30.0,
        group="Sync",
        read_by=WORKER,
        doc="an ended run's per-user rows are deleted after this many days, when the next run"
        " starts; its summary and counts stay",
        ge=0,
    )
    approval_lease: float = setting(
        30.0,
        group="Sync",
        read_by=WORKER,
        doc="seconds a worker replica holds an approval given on the console (marking a"
        " run's missing users) without renewing it; a replica that died is taken over after it",
        gt=0,
        le=3600,
    )
    run_stall_after: float = setting(
        1800.0,
        group="Sync",
        read_by=WORKER,
        doc="seconds an open bulk run may go without progress (no user settled, no page"
        " scanned, no replica holding its run lock) before it ends `failed`, its users still"
        " open counted failed; at least twice the longest retry delay (see Bulk runs)",
        gt=0,
    )
    signing_key: SecretStr | None = setting(
        None,
        group="Sync",
        read_by=WORKER,
        doc="key (16+ bytes) the workers sign their `user-sync` messages with; unset, the"
        " random keys `migrate` and `rotate-key` keep in the asset store (see Security)",
    )
    signing_key_refresh: float = setting(
        30.0,
        group="Sync",
        read_by=WORKER,
        doc="seconds between two reads of the stored signing keys: a rotation reaches"
        " every replica within it (`rotate-key --window` must be at least twice as long)",
        gt=0,
        le=3600,
    )

    # Operations
    log_level: str = setting(
        "INFO",
        group="Operations",
        read_by=EVERY_COMMAND,
        doc="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`",
    )
    log_format: Literal["text", "json"] = setting(
        "text",
        group="Operations",
        read_by=EVERY_COMMAND,
        doc="`text` (one line per record, context appended as `[key=value ...]`) or `json`"
        " (one JSON object per line); see Logs",
    )
    health_file: Path | None = setting(
        Path("/tmp/assetsync-worker.alive"),
        group="Operations",
        read_by=WORKER,
        doc="touched by the consuming loop; `assetsync worker healthcheck` checks it; empty"
        " turns it off",
    )
    metrics_port: int | None = setting(
        None,
        group="Operations",
        read_by=WORKER,
        doc="port of the replica's `/metrics`, `/healthz` and `/readyz`; unset or empty serves"
        " none",
        ge=1,
        le=65535,
    )
    stall_seconds: float = setting(
        300.0,
        group="Operations",
        read_by=WORKER,
        doc="seconds a consuming loop may go without progress before `/healthz` calls it stuck",
        gt=0,
    )

    # Security-log source
    security_log_listen: str | None = setting(
        None,
        group="Security-log source",
        read_by=SECURITY_LOG,
        doc="`HOST:PORT` of its status endpoint (`/healthz`: the file followed, the position,"
        " the last login published, how far behind; `/metrics`), read-only; unset, none",
    )

    # Webhook receiver
    webhook_secret: SecretStr | None = setting(
        None,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="the webhook's secret; without it the receiver refuses to start...",
    )
    webhook_insecure: bool = setting(
        False,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="...unless this is `true`: unsigned deliveries are accepted (a receiver on a"
        " private network only; said at start)",
    )
    webhook_listen: str = setting(
        "0.0.0.0:8090",
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="`HOST:PORT` to listen on (`[::]:8090` for IPv6; port 0 picks a free one)",
    )
    webhook_max_bytes: int = setting(
        262_144,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="larger bodies get 413 unread",
        ge=1024,
        le=16 * 1024 * 1024,
    )
    webhook_confirm_timeout: float = setting(
        10.0,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="seconds a request waits for RabbitMQ before 503 (Cloud waits ~20 s for an answer)",
        gt=0,
        le=60,
    )
    webhook_header_timeout: float = setting(
        10.0,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="seconds a client may take to send a request's headers (from connecting, or"
        " from the previous answer on a kept-alive connection); then it is disconnected",
        gt=0,
        le=300,
    )
    webhook_body_timeout: float = setting(
        10.0,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="seconds a client may then take to send the body; then it is disconnected",
        gt=0,
        le=300,
    )
    webhook_max_connections: int = setting(
        2000,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="connections held at most (fewer if the open-file limit is lower); a newcomer"
        " past it pushes out the oldest that is still sending its headers (see Slow clients)",
        ge=16,
        le=100_000,
    )
    webhook_body_budget: int = setting(
        8 * 1024 * 1024,
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="bytes all request bodies being received or handled may hold together, at"
        " least `ASSETSYNC_WEBHOOK_MAX_BYTES` (see Slow clients)",
        ge=1024,
        le=1024 * 1024 * 1024,
    )
    webhook_name: str = setting(
        "assetsync users",
        group="Webhook receiver",
        read_by=RECEIVER,
        doc="the webhook's name in Jira, for `register` / `unregister` / `status`",
        min_length=1,
        max_length=255,
    )

    @field_validator("field_map")
    @classmethod
    def _known_jira_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(JIRA_FIELDS))
        if unknown:
            known = ", ".join(JIRA_FIELDS)
            raise ValueError(f"unknown Jira field(s) {', '.join(unknown)}; known: {known}")
        if "name" not in value:
            raise ValueError('the username mapping is mandatory: add "name": "<asset field>"')
        targets = list(value.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"asset field(s) mapped twice: {', '.join(twice)}")
        return value

    @field_validator("missing_limit")
    @classmethod
    def _count_or_percentage(cls, value: str) -> str:
        return MissingLimit.parse(value).text

    @field_validator("jira_url")
    @classmethod
    def _plain_jira_url(cls, value: str | None) -> str | None:
        # The URL is logged and shown; credentials in it would be too.
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not contain credentials: set ASSETSYNC_JIRA_USERNAME and"
                " ASSETSYNC_JIRA_TOKEN instead"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be the http:// or https:// base URL of Jira, e.g. https://jira.example.com"
            )
        if parts.query or parts.fragment:
            raise ValueError("must be the Jira base URL, without a query or fragment")
        return value

    @field_validator("console_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes (or unset: a random key per process)")
        return value

    @field_validator(
        "health_file",
        "metrics_port",
        "jira_username",
        "jira_token",
        "console_secret",
        "console_webhooks_url",
        "console_security_log_urls",
        "security_log_listen",
        mode="before",
    )
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        # ASSETSYNC_HEALTH_FILE= turns it off; an empty Jira username (a ConfigMap key left
        # blank) means none, so the token is sent as a personal access token.
        return None if value == "" else value

    @field_validator("folder")
    @classmethod
    def _folder_path(cls, value: str) -> str:
        parts = [p.strip() for p in value.split("/")]
        if not all(parts):
            raise ValueError("folder must be a path like 'Employees' or 'People/Staff'")
        return "/".join(parts)

    @field_validator("retry_delays")
    @classmethod
    def _positive_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("retry_delays must be a non-empty list of positive seconds")
        return value

    @field_validator("run_stall_after")
    @classmethod
    def _outlasts_retries(cls, value: float, info: ValidationInfo) -> float:
        # A message waiting in the longest delay queue, or a bulk request retried after
        # its scan gave up waiting for Jira, makes no progress meanwhile.
        delays = info.data.get("retry_delays") or DEFAULT_RETRY_DELAYS
        if value < 2 * max(delays):
            raise ValueError(
                f"must be at least twice the longest retry delay ({2 * max(delays):g} s)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.strip().upper()

    @field_validator("webhook_listen", "security_log_listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @field_validator("console_security_log_urls")
    @classmethod
    def _status_urls(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for url in filter(None, (u.strip() for u in value.split(","))):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be http:// or https:// URLs, comma-separated")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _blank_is_no_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @property
    def topology(self) -> Topology:
        return Topology(prefix=self.amqp_prefix, retry_delays=self.retry_delays)

    @property
    def missing_limit_rule(self) -> MissingLimit:
        return MissingLimit.parse(self.missing_limit)

    @property
    def folder_path(self) -> tuple[str, ...]:
        return tuple(self.folder.split("/"))

    @property
    def security_log_urls(self) -> tuple[str, ...]:
        """``ASSETSYNC_CONSOLE_SECURITY_LOG_URLS`` as a tuple (empty when unset)."""
        value = self.console_security_log_urls or ""
        return tuple(url.strip() for url in value.split(",") if url.strip())

    @property
    def security_log_address(self) -> tuple[str, int] | None:
        """``ASSETSYNC_SECURITY_LOG_LISTEN`` as (host, port), or None when unset."""
        if self.security_log_listen is None:
            return None
        host, _, port = self.security_log_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def webhook_address(self) -> tuple[str, int]:
        """``ASSETSYNC_WEBHOOK_LISTEN`` as (host, port); IPv6 hosts without brackets."""
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)


def load_settings(env_file: Path | None = None) -> Settings:
    """Read settings from the environment, and from ``env_file`` if one is given (the
    environment wins).

    :raises ConfigError: a setting is invalid, or the file is missing; the message is one
        line naming the setting (``invalid setting ASSETSYNC_X: ...``), never its value.
    """
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"settings file not found: {env_file}")
    try:
        return Settings(_env_file=env_file)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = "ASSETSYNC_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(
            f"invalid setting {name}: {first['msg'].removeprefix('Value error, ')}"
        ) from None
    except SettingsError as exc:
        # pydantic-settings names the field only in its message; JSON is the usual culprit.
        found = re.search(r'field "(\w+)"', str(exc))
        name = "ASSETSYNC_" + found.group(1).upper() if found else "settings"
        raise ConfigError(f"invalid setting {name}: not valid JSON") from None
