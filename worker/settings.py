"""Every setting, infrastructure and sync alike, read once from ``ASSETSYNC_*``.

Built in ``__main__`` and passed down; nothing reads the environment elsewhere. An
optional env file (``--env-file``) supplies the same names; real environment variables
win over it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topology import DEFAULT_RETRY_DELAYS, Topology

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSETSYNC_", extra="ignore")

    # Infrastructure
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F")
    amqp_prefix: str = Field(default="assetsync", pattern=r"^[A-Za-z0-9_.-]+$")
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/assetsync")
    database_timeout: float = Field(default=60.0, gt=0, le=3600)
    jira_url: str | None = None
    jira_username: str | None = None
    jira_token: SecretStr | None = None
    jira_flavor: Literal["auto", "datacenter", "cloud"] = "auto"
    jira_timeout: float = Field(default=10.0, gt=0, le=60)
    jira_deadline: float = Field(default=60.0, gt=0, le=600)
    jira_max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024)
    jira_ca_bundle: Path | None = None
    # Authenticates the per-user messages of bulk runs between workers (HMAC-SHA256);
    # unset, the workers share a random key kept in the asset store.
    signing_key: SecretStr | None = None
    jira_page_size: int = Field(default=1000, ge=1, le=1000)
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    heartbeat: int = Field(default=30, ge=0)
    login_prefetch: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=200, ge=1, le=5000)
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    health_file: Path | None = Path("/tmp/assetsync-worker.alive")
    # Port of the replica's metrics and probe endpoints; unset (or empty) serves none.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Seconds a consuming loop may go without progress (or a normal wait) before
    # /healthz calls it stuck.
    stall_seconds: float = Field(default=300.0, gt=0)

    # The console (``python -m console``): where it listens, how long a session lasts
    # without use, and the key its session cookies are signed with (unset: a random key
    # per process, so sessions end when it restarts and replicas cannot share them).
    console_bind: str = "127.0.0.1"
    console_port: int = Field(default=8080, ge=0, le=65535)
    console_session_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    console_secret: SecretStr | None = None

    # Sync (what the admin page configures)
    sync_on_login: bool = True
    asset_type: str = "Employee"
    folder: str = "Employees"
    alphabetical_subfolders: bool = True
    user_field: str = "User"
    field_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FIELD_MAP))
    missing_users: Literal["mark", "ignore"] = "mark"
    # Days after which an ended run's per-user rows are deleted (its counts are kept).
    run_retention_days: float = Field(default=30.0, ge=0)
    missing_limit: str = DEFAULT_MISSING_LIMIT.text

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

    @field_validator("health_file", "metrics_port", "console_secret", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if value == "" else value  # e.g. ASSETSYNC_HEALTH_FILE= turns it off

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

    @property
    def topology(self) -> Topology:
        return Topology(prefix=self.amqp_prefix, retry_delays=self.retry_delays)

    @property
    def missing_limit_rule(self) -> MissingLimit:
        return MissingLimit.parse(self.missing_limit)

    @property
    def folder_path(self) -> tuple[str, ...]:
        return tuple(self.folder.split("/"))


def load_settings(env_file: Path | None = None) -> Settings:
    """Read settings from the environment, and from ``env_file`` if one is given."""
    if env_file is not None and not env_file.is_file():
        raise FileNotFoundError(f"settings file not found: {env_file}")
    return Settings(_env_file=env_file)
