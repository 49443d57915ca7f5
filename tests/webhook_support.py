"""The webhook receiver as a process of its own, and signed deliveries to it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lab.harness import ROOT, wait_for
from schemas.topology import Topology

SECRET = "s3cr3t-for-tests"
LISTENING = re.compile(r"listening on (http://\S+)")


def receiver_env(
    *, amqp_url: str, topology: Topology, secret: str | None = SECRET, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETSYNC_")}
    env.update(
        ASSETSYNC_AMQP_URL=amqp_url,
        ASSETSYNC_AMQP_PREFIX=topology.prefix,
        ASSETSYNC_WEBHOOK_LISTEN="127.0.0.1:0",
        PYTHONUNBUFFERED="1",
    )
    if secret is not None:
        env["ASSETSYNC_WEBHOOK_SECRET"] = secret
    env.update(extra)
    return env


@dataclass
class ReceiverProcess:
    """``python -m producers.jira_webhooks`` in a subprocess, its log in a file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    url: str = field(default="", init=False)

    def start(self) -> ReceiverProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "producers.jira_webhooks"],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        found = wait_for(
            lambda: LISTENING.search(self.log()) or self.proc.poll() is not None,
            timeout=20,
            what="the receiver to listen",
        )
        assert self.proc.poll() is None, f"receiver exited early:\n{self.log()}"
        self.url = found.group(1)  # type: ignore[union-attr]
        wait_for(lambda: "RabbitMQ" in self.log(), what="the first broker connection attempt")
        return self

    @property
    def base(self) -> str:
        return self.url.removesuffix("/webhooks/jira")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(20)
        self._log.close()
        return code

    def post(
        self,
        body: bytes | dict[str, Any],
        *,
        secret: str | None = SECRET,
        delivery: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """POST a delivery as Jira does: signed with ``secret`` (None: unsigned)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent: dict[str, Any] = {"Content-Type": "application/json"}
        if secret is not None:
            sent["X-Hub-Signature"] = signature(secret, raw)
        if delivery is not None:
            sent["X-Atlassian-Webhook-Identifier"] = delivery
        sent.update(headers or {})
        return httpx.post(self.url, content=raw, headers=sent, timeout=30)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dc_event(
    event: str,
    *,
    key: str = "JIRAUSER10100",
    name: str = "jdoe",
    ts: int | None = 1_700_000_000_000,
) -> dict[str, Any]:
    """A Data Center user event as Atlassian documents it (``active`` as a string)."""
    body: dict[str, Any] = {
        "webhookEvent": event,
        "user": {
            "self": f"https://jira.example.com/rest/api/2/user?username={name}",
            "name": name,
            "key": key,
            "emailAddress": f"{name}@example.com",
            "avatarUrls": {"48x48": "https://jira.example.com/secure/useravatar?avatarId=10122"},
            "displayName": "Jane Doe",
            "active": "true",
        },
    }
    if ts is not None:
        body["timestamp"] = ts
    return body


def cloud_event(
    event: str,
    *,
    account_id: str = "5b10ac8d82e05b22cc7d4ef5",
    account_type: str = "atlassian",
    ts: int = 1_700_000_000_000,
) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "webhookEvent": event,
        "user": {
            "self": f"https://example.atlassian.net/rest/api/3/user?accountId={account_id}",
            "accountId": account_id,
            "accountType": account_type,
            "avatarUrls": {},
            "displayName": "Jane Doe",
            "active": True,
            "timeZone": "Europe/Berlin",
        },
    }
