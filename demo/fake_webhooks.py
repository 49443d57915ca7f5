"""Jira's admin webhooks for the fake Jira: the REST resource and signed deliveries.

The resource is ``/rest/webhooks/1.0/webhook`` (list, create) and ``…/webhook/{id}``
(read, update, delete), for administrators only. When a user of the fake Jira is
created, updated or deleted, every enabled webhook subscribed to that event gets a POST
from a background thread, as Jira sends it: ``{"timestamp", "webhookEvent", "user"}``
(Data Center's ``active`` is the string ``"true"``), signed with
``X-Hub-Signature: sha256=…`` when the webhook has a secret, and on Cloud with
``X-Atlassian-Webhook-Identifier`` (the same on each retry). Like Cloud, a delivery
answered 408, 409, 425, 429 or 5xx, or not answered, is sent again a few times.

Only the standard library is used, like the rest of the fake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from demo.fake_jira import FakeJira

log = logging.getLogger(__name__)

Json = dict[str, Any]
Reply = tuple[int, Any, dict[str, str]]
ErrorReply = Callable[[int, str], Reply]

RESOURCE = "/rest/webhooks/1.0/webhook"
USER_EVENTS = ("user_created", "user_updated", "user_deleted")
RETRIED_STATUSES = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event: what was sent and what came back."""

    hook_id: int
    event: str
    url: str
    identifier: str
    attempt: int
    status: int | None  # None: no HTTP answer (refused, timed out)
    body: bytes


class FakeWebhooks:
    """
    :param cloud: Cloud flavour (delivery ids, Cloud user JSON) or Data Center.
    :param base_url: the fake Jira's address, for the ``self`` links.
    :param retries: further attempts after a failed delivery.
    :param retry_delay: seconds before each further attempt.
    :param timeout: seconds for connecting to and hearing back from a receiver.
    """

    def __init__(
        self,
        *,
        cloud: bool,
        base_url: Callable[[], str],
        retries: int = 3,
        retry_delay: float = 1.0,
        timeout: float = 20.0,
    ) -> None:
        self.cloud = cloud
        self._base_url = base_url
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.admin = True  # False: the account may not manage webhooks (403)
        self._lock = threading.Lock()
        self._hooks: dict[int, Json] = {}
        self._next_id = 1
        self._outbox: queue.Queue[tuple[Json, str, bytes] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self._busy = 0
        self.deliveries: list[Delivery] = []

    # -- Python API for tests and the demo --------------------------------------------

    def register(
        self,
        url: str,
        *,
        secret: str | None = None,
        name: str = "assetsync users",
        events: tuple[str, ...] = USER_EVENTS,
    ) -> int:
        """Add a webhook as an administrator would in Jira's UI; return its id."""
        with self._lock:
            return self._create(
                {"name": name, "url": url, "events": list(events), "secret": secret}
            )

    def hooks(self) -> list[Json]:
        """Every webhook, as stored (secret included)."""
        with self._lock:
            return [dict(h) for h in self._hooks.values()]

    def user_event(self, event: str, user: Json) -> None:
        """Send ``event`` about ``user`` (its REST JSON) to every subscribed webhook."""
        body = {"timestamp": int(time.time() * 1000), "webhookEvent": event}
        body["user"] = _webhook_user(user, self.cloud)
        with self._lock:
            targets = [h for h in self._hooks.values() if h["enabled"] and event in h["events"]]
            for hook in targets:
                self._busy += 1
                payload = {**body, "matchedWebhookIds": [hook["id"]]}
                encoded = json.dumps(payload, separators=(",", ":")).encode()
                self._outbox.put((dict(hook), event, encoded))
            if targets and self._sender is None:
                self._sender = threading.Thread(target=self._send_all, name="webhooks", daemon=True)
                self._sender.start()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Return once every event so far was delivered or given up on."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._busy == 0:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("webhook deliveries still pending")
            time.sleep(0.02)

    def stop(self) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            self._outbox.put(None)
            sender.join(timeout=5)

    # -- the REST resource (called by FakeJira for authenticated requests) ------------

    def respond(self, method: str, path: str, body: bytes, error: ErrorReply) -> Reply:
        if not self.admin:
            return error(403, "You do not have the permission to manage webhooks.")
        rest = path[len(RESOURCE) :].strip("/")
        with self._lock:
            if not rest:
                if method == "GET":
                    return 200, [self._json(h) for h in self._hooks.values()], {}
                if method == "POST":
                    fields = _fields(body)
                    if isinstance(fields, str):
                        return error(400, fields)
                    return 201, self._json(self._hooks[self._create(fields)]), {}
                return error(405, f"{method} is not allowed here")
            hook = self._hooks.get(int(rest)) if rest.isdigit() else None
            if hook is None:
                return error(404, f"No webhook with id {rest}")
            if method == "GET":
                return 200, self._json(hook), {}
            if method == "DELETE":
                del self._hooks[hook["id"]]
                return 204, None, {}
            if method == "PUT":
                fields = _fields(body)
                if isinstance(fields, str):
                    return error(400, fields)
                hook.update(fields, lastUpdated=int(time.time() * 1000))
                return 200, self._json(hook), {}
            return error(405, f"{method} is not allowed here")

    # -- internals ----------------------------------------------------------------------

    def _create(self, fields: Json) -> int:
        hook_id, self._next_id = self._next_id, self._next_id + 1
        self._hooks[hook_id] = {
            "id": hook_id,
            "name": fields.get("name") or f"webhook {hook_id}",
            "url": fields["url"],
            "events": list(fields.get("events") or []),
            "enabled": fields.get("enabled", True),
            "secret": fields.get("secret"),
            "lastUpdated": int(time.time() * 1000),
        }
        return hook_id

    def _json(self, hook: Json) -> Json:
        # Jira never shows the secret back.
        return {
            "self": f"{self._base_url()}{RESOURCE}/{hook['id']}",
            "name": hook["name"],
            "url": hook["url"],
            "events": list(hook["events"]),
            "filters": {},
            "excludeBody": False,
            "enabled": hook["enabled"],
            "lastUpdated": hook["lastUpdated"],
        }

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            hook, event, body = item
            try:
                self._deliver(hook, event, body)
            except Exception:  # a test's bad URL must not stop later deliveries
                log.exception("fake Jira could not deliver %s", event)
            finally:
                with self._lock:
                    self._busy -= 1

    def _deliver(self, hook: Json, event: str, body: bytes) -> None:
        identifier = str(uuid.uuid4())
        for attempt in range(1 + self.retries):
            headers = {"Content-Type": "application/json; charset=UTF-8"}
            if hook.get("secret"):
                digest = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={digest}"
            if self.cloud:
                headers["X-Atlassian-Webhook-Identifier"] = identifier
                headers["X-Atlassian-Webhook-Flow"] = "Primary"
                if attempt:
                    headers["X-Atlassian-Webhook-Retry"] = str(attempt)
            status = _post(hook["url"], body, headers, self.timeout)
            with self._lock:
                self.deliveries.append(
                    Delivery(hook["id"], event, hook["url"], identifier, attempt, status, body)
                )
            if status is not None and status < 300:
                return
            if status is not None and status < 500 and status not in RETRIED_STATUSES:
                return  # the receiver refused it for good
            time.sleep(self.retry_delay)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int | None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _fields(body: bytes) -> Json | str:
    """A webhook's fields from a create/update body, or Jira's reason to refuse it."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return "The request body is not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not data["url"]:
        return "A webhook needs a url"
    events = data.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "events must be a list of event names"
    fields = {k: data[k] for k in ("name", "url", "events", "enabled", "secret") if k in data}
    return fields


def _webhook_user(user: Json, cloud: bool) -> Json:
    """A user as webhooks carry it: REST JSON, but Data Center's ``active`` is a string."""
    keep = (
        ("self", "accountId", "accountType", "avatarUrls", "displayName", "active", "timeZone")
        if cloud
        else ("self", "name", "key", "emailAddress", "avatarUrls", "displayName", "active")
    )
    out = {k: user[k] for k in keep if k in user}
    if cloud and "emailAddress" in user:
        out["emailAddress"] = user["emailAddress"]
    if not cloud:
        out["active"] = "true" if user.get("active") else "false"
    return out


class DirectoryChanges:
    """For the demo: every ``every`` seconds a sample user's display name changes (a
    ``user_updated`` delivery to each registered webhook), cycling through the users.

    :param fake: the running fake Jira.
    :param every: seconds between changes; 0 never changes anything.
    """

    def __init__(self, fake: FakeJira, *, every: float) -> None:
        self.fake = fake
        self.every = every
        self._next = time.monotonic() + every
        self._count = 0

    def tick(self) -> None:
        if self.every <= 0 or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        users = self.fake.users()
        if not users:
            return
        user = users[self._count % len(users)]
        self._count += 1
        ident = user.get("key") or user["accountId"]
        base = str(user.get("displayName", "")).split(" (")[0]
        self.fake.update_user(ident, display_name=f"{base} ({self._count})")
        log.warning("demo: renamed %r to %r", user.get("displayName"), f"{base} ({self._count})")
