"""Who may do what on the broker: one RabbitMQ user per component, with exactly the
permissions it needs (docs/security.md). The Compose definitions, the Kubernetes
instructions and the test that tries each component with its own user come from here.

Producers (the webhook receiver, the security-log source, the admin script and the
console) may only publish their own message type to the main exchange: no configure,
no read, and a topic permission for their one routing key. They check the topology
with passive declarations, which need no permission (``producers.publisher``). The
workers configure, read and write everything under the prefix and publish only
``user-sync`` to the main exchange (retries go through the delay exchange, a headers
exchange). The operator (the dead-letter tool) reads the dead queue and replays any
type.

``python -m schemas.access OUT.json`` writes RabbitMQ definitions for these users, with
password hashes made from ``ASSETSYNC_<COMPONENT>_AMQP_PASSWORD`` variables (and an
administrator from ``RABBITMQ_DEFAULT_USER`` / ``RABBITMQ_DEFAULT_PASS``): what
Compose's one-shot ``broker-users`` service does before RabbitMQ starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.messages import BULK_SYNC_REQUESTED, USER_CHANGED, USER_LOGGED_IN, USER_SYNC
from schemas.topology import Topology

SHIPPED = Topology()  # the names deployments use (prefix "assetsync")
NOTHING = "^$"
EVERYTHING = ".*"


@dataclass(frozen=True)
class Grant:
    """One component's rights in the vhost: regular expressions as RabbitMQ takes them.

    :param topic_write: routing keys it may publish to the main (topic) exchange.
    """

    component: str
    user: str
    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str = NOTHING


def grants(topology: Topology = SHIPPED) -> list[Grant]:
    prefix = re.escape(topology.prefix)
    exchange = f"^{re.escape(topology.exchange)}$"
    ours = f"^{prefix}(\\..*)?$"

    def producer(component: str, routing_key: str) -> Grant:
        return Grant(
            component,
            f"assetsync-{component}",
            NOTHING,
            exchange,
            NOTHING,
            f"^{routing_key}$",  # message types are letters and dashes
        )

    return [
        Grant("worker", "assetsync-worker", ours, ours, ours, f"^{USER_SYNC}$", EVERYTHING),
        producer("webhooks", USER_CHANGED),
        producer("security-log", USER_LOGGED_IN),
        producer("admin", BULK_SYNC_REQUESTED),
        Grant(
            "operator",
            "assetsync-operator",
            NOTHING,
            exchange,
            f"^{re.escape(topology.dead_queue)}$",
            EVERYTHING,
        ),
    ]


def password_variable(grant: Grant) -> str:
    return "ASSETSYNC_" + grant.component.upper().replace("-", "_") + "_AMQP_PASSWORD"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + pw))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(
    passwords: dict[str, str],
    *,
    admin: tuple[str, str] | None = None,
    vhost: str = "/",
    topology: Topology = SHIPPED,
) -> dict[str, Any]:
    """RabbitMQ definitions (users, the vhost, permissions, topic permissions) for the
    components in ``passwords`` (component -> password), plus ``admin``."""
    users: list[dict[str, Any]] = []
    permissions: list[dict[str, str]] = []
    topic_permissions: list[dict[str, str]] = []
    if admin is not None:
        users.append(_user(admin[0], admin[1], "administrator"))
        permissions.append(
            {"user": admin[0], "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
        )
    for grant in grants(topology):
        if grant.component not in passwords:
            continue
        users.append(_user(grant.user, passwords[grant.component], ""))
        permissions.append(
            {
                "user": grant.user,
                "vhost": vhost,
                "configure": grant.configure,
                "write": grant.write,
                "read": grant.read,
            }
        )
        topic_permissions.append(
            {
                "user": grant.user,
                "vhost": vhost,
                "exchange": topology.exchange,
                "write": grant.topic_write,
                "read": grant.topic_read,
            }
        )
    return {
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topic_permissions,
    }


def _user(name: str, password: str, tags: str) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": tags,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m schemas.access OUT.json", file=sys.stderr)
        return 2
    missing = [password_variable(g) for g in grants() if not os.environ.get(password_variable(g))]
    admin_user, admin_password = (
        os.environ.get("RABBITMQ_DEFAULT_USER"),
        os.environ.get("RABBITMQ_DEFAULT_PASS"),
    )
    if missing or not admin_user or not admin_password:
        needed = [
            *missing,
            *(() if admin_user and admin_password else ("RABBITMQ_DEFAULT_USER/PASS",)),
        ]
        print(f"python -m schemas.access: set {', '.join(needed)}", file=sys.stderr)
        return 78
    passwords = {g.component: os.environ[password_variable(g)] for g in grants()}
    out = Path(args[0])
    out.write_text(json.dumps(definitions(passwords, admin=(admin_user, admin_password)), indent=2))
    out.chmod(0o644)  # RabbitMQ's own user reads it; it holds hashes, not passwords
    print(f"wrote {out}: users {', '.join(g.user for g in grants())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
