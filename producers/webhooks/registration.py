"""The receiver's webhook in Jira: found by name, created or updated, removed, shown,
through the one Jira client (``worker.jira``, which knows the REST resource). Managing
webhooks needs a Jira administrator. Jira never shows a webhook's secret back, so
``register`` always writes the webhook (an unchanged one is written unchanged).
"""

from __future__ import annotations

from typing import Any

from producers.webhooks.payload import EVENTS
from worker.errors import PermanentError
from worker.jira import JiraClient, Webhook

WANTED_EVENTS = tuple(EVENTS)


class RegistrationError(PermanentError):
    """Jira's webhooks are not as registration can work with; ``str()`` is one line."""


def complete(hook: Webhook) -> bool:
    """Enabled and sending every user event the receiver needs."""
    return hook.enabled and set(WANTED_EVENTS) <= set(hook.events)


class Registration:
    """The receiver's webhook, by name.

    :param jira: the client, with an administrator's credentials.
    """

    def __init__(self, *, jira: JiraClient) -> None:
        self.jira = jira

    def named(self, name: str) -> list[Webhook]:
        return [h for h in self.jira.webhooks() if h.name == name]

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
            return "created", self._written(self.jira.create_webhook(body), name)
        return "updated", self._written(self.jira.update_webhook(existing.id, body), name)

    def unregister(self, name: str) -> list[Webhook]:
        """Delete every webhook of that name; return what was deleted."""
        found = self.named(name)
        for hook in found:
            self.jira.delete_webhook(hook.id)
        return found

    def _written(self, answer: Webhook | None, name: str) -> Webhook:
        if answer is not None:
            return answer
        # Some versions answer without the webhook: read it back.
        found = self.find(name)
        if found is None:
            raise RegistrationError(f"Jira accepted the webhook but does not list {name!r}")
        return found
