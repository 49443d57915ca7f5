"""The receiver's webhook in Jira: found by name, created or updated, removed, shown.

Jira's admin webhook REST resource, the same on Data Center and Cloud:
``GET|POST /rest/webhooks/1.0/webhook`` and ``GET|PUT|DELETE …/webhook/{id}``. Managing
webhooks needs a Jira administrator. Jira never shows a webhook's secret back, so
``register`` always writes the webhook (an unchanged one is written unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from producers.webhooks.payload import EVENTS
from worker.cli import one_line

RESOURCE = "/rest/webhooks/1.0/webhook"
WANTED_EVENTS = tuple(EVENTS)


class RegistrationError(Exception):
    """Jira refused or could not be asked; ``str()`` is one line for the admin."""


@dataclass(frozen=True)
class Webhook:
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

    @property
    def complete(self) -> bool:
        """Enabled and sending every user event the receiver needs."""
        return self.enabled and set(WANTED_EVENTS) <= set(self.events)


class JiraWebhooks:
    """
    :param base_url: Jira's base URL.
    :param username: basic-auth user (Cloud: the account e-mail); None sends ``token``
        as a Bearer personal access token.
    :param token: API token, password or personal access token.
    :param timeout: seconds for connecting and for each read.
    :param transport: an httpx transport (tests may pass one; normally None).
    """

    def __init__(
        self,
        *,
        base_url: str,
        username: str | None,
        token: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        auth: tuple[str, str] | None = None
        if username:
            auth = (username, token)
        else:
            headers["Authorization"] = f"Bearer {token}"
        self._base = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self._base,
            auth=auth,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> JiraWebhooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def named(self, name: str) -> list[Webhook]:
        listed = self._call("GET", RESOURCE)
        items = listed.get("values", []) if isinstance(listed, dict) else listed
        hooks = [Webhook.from_json(h) for h in items or [] if isinstance(h, dict)]
        return [h for h in hooks if h.name == name]

    def find(self, name: str) -> Webhook | None:
        found = self.named(name)
        if len(found) > 1:
            ids = ", ".join(h.id for h in found)
            raise RegistrationError(
                f"{len(found)} webhooks in Jira are named {name!r} (ids {ids}): delete the"
                " extra ones in Jira (System > WebHooks) or run `unregister`"
            )
        return found[0] if found else None

    def register(self, *, name: str, url: str, secret: str | None) -> tuple[str, Webhook]:
        """Create the webhook, or update the one of that name; ("created"|"updated", it)."""
        body: dict[str, Any] = {
            "name": name,
            "url": url,
            "events": list(WANTED_EVENTS),
            "filters": {},
            "excludeBody": False,
            "enabled": True,
        }
        if secret is not None:
            body["secret"] = secret
        existing = self.find(name)
        if existing is None:
            created = self._call("POST", RESOURCE, body)
            return "created", self._written(created, name)
        updated = self._call("PUT", f"{RESOURCE}/{existing.id}", body)
        return "updated", self._written(updated, name)

    def unregister(self, name: str) -> list[Webhook]:
        """Delete every webhook of that name; return what was deleted."""
        found = self.named(name)
        for hook in found:
            self._call("DELETE", f"{RESOURCE}/{hook.id}")
        return found

    def _written(self, answer: Any, name: str) -> Webhook:
        if isinstance(answer, dict) and answer.get("self"):
            return Webhook.from_json(answer)
        # Some versions answer without the webhook: read it back.
        found = self.find(name)
        if found is None:
            raise RegistrationError(f"Jira accepted the webhook but does not list {name!r}")
        return found

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RegistrationError(f"cannot reach Jira at {self._base} ({one_line(exc)})") from exc
        status = response.status_code
        if status == 401:
            raise RegistrationError(
                "Jira refused the credentials (401): check ASSETSYNC_JIRA_USERNAME and"
                " ASSETSYNC_JIRA_TOKEN"
            )
        if status == 403:
            raise RegistrationError(
                "Jira says this account may not manage webhooks (403): it needs the Jira"
                " administrator global permission"
            )
        if status == 404 and method in ("GET", "POST"):
            raise RegistrationError(
                f"Jira has no webhook REST resource at {self._base}{RESOURCE} (404):"
                " is ASSETSYNC_JIRA_URL Jira's base URL?"
            )
        if status >= 400:
            raise RegistrationError(
                f"Jira answered {status} to {method} {path}: {_jira_message(response)}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RegistrationError(f"Jira answered {method} {path} with no JSON") from None


def _jira_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return one_line(response.text[:200]) or response.reason_phrase
    if isinstance(data, dict):
        messages = [str(m) for m in data.get("errorMessages") or []]
        errors = data.get("errors")
        if isinstance(errors, dict):
            messages += [f"{k}: {v}" for k, v in errors.items()]
        if messages:
            return one_line("; ".join(messages))[:300]
    return response.reason_phrase
