"""The receiver's settings: the producers' ``ASSETSYNC_*`` names plus its own."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from producers.publisher import ProducerSettings

DEFAULT_NAME = "assetsync users"


class WebhookSettings(ProducerSettings):
    webhook_listen: str = "0.0.0.0:8090"
    webhook_secret: SecretStr | None = None
    webhook_insecure: bool = False
    webhook_max_bytes: int = Field(default=262_144, ge=1024, le=16 * 1024 * 1024)
    webhook_confirm_timeout: float = Field(default=10.0, gt=0, le=60)
    # Slow clients (README, Events from Jira): seconds for a request's headers and for
    # its body, connections held at most, bytes all request bodies hold together.
    webhook_header_timeout: float = Field(default=10.0, gt=0, le=300)
    webhook_body_timeout: float = Field(default=10.0, gt=0, le=300)
    webhook_max_connections: int = Field(default=2000, ge=16, le=100_000)
    webhook_body_budget: int = Field(default=8 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    webhook_name: str = Field(default=DEFAULT_NAME, min_length=1, max_length=255)
    # Registration talks to Jira with the worker's credentials names.
    jira_url: str | None = None
    jira_username: str | None = None
    jira_token: SecretStr | None = None
    jira_timeout: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _budget_holds_a_body(self) -> WebhookSettings:
        if self.webhook_body_budget < self.webhook_max_bytes:
            raise ValueError(
                "ASSETSYNC_WEBHOOK_BODY_BUDGET must be at least ASSETSYNC_WEBHOOK_MAX_BYTES"
            )
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _blank_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @property
    def listen(self) -> tuple[str, int]:
        """``host:port`` (``[::1]:8090`` for IPv6) as a pair.

        :raises ValueError: not of that form.
        """
        host, sep, port = self.webhook_listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"ASSETSYNC_WEBHOOK_LISTEN={self.webhook_listen!r} is not HOST:PORT")
        return host, int(port)

    @property
    def secret_bytes(self) -> bytes | None:
        return self.webhook_secret.get_secret_value().encode() if self.webhook_secret else None
