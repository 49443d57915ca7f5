"""Authenticating the workers' own messages: a bulk run's per-user ``user-sync`` carries
a Jira snapshot that the worker writes as it is, so a worker must know that another
worker made it, not anyone who may publish to the exchange.

Each body is signed with HMAC-SHA256 under a key only the workers hold (the setting
``ASSETSYNC_SIGNING_KEY``, or a random key the migration keeps in the asset store); the
signature travels in the header ``assetsync-signature`` and survives retries and dead
letters, which copy headers.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.messages import USER_SYNC
from worker.broker import Outgoing
from worker.errors import ConfigError, InvalidMessage

SIGNATURE_HEADER = "assetsync-signature"
SCHEME = "hmac-sha256="


class Signer:
    """Signs and checks message bodies.

    :param key: the shared secret, at least 16 bytes.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("ASSETSYNC_SIGNING_KEY: must be at least 16 bytes long")
        self._key = key

    def sign(self, body: bytes) -> str:
        return SCHEME + hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def check(self, body: bytes, headers: Mapping[str, Any] | None) -> None:
        """:raises InvalidMessage: the body is unsigned, or not signed with our key."""
        given = (headers or {}).get(SIGNATURE_HEADER)
        if given is None:
            raise InvalidMessage("unsigned: only workers may publish this message type")
        if isinstance(given, bytes):
            given = given.decode("latin-1")
        if not isinstance(given, str) or not hmac.compare_digest(given, self.sign(body)):
            raise InvalidMessage("bad signature: only workers may publish this message type")


def signed_user_syncs(bodies: Sequence[bytes], *, exchange: str, signer: Signer) -> list[Outgoing]:
    """``user-sync`` bodies as messages to publish, each signed."""
    return [
        Outgoing(
            body=b,
            exchange=exchange,
            routing_key=USER_SYNC,
            headers={SIGNATURE_HEADER: signer.sign(b)},
        )
        for b in bodies
    ]
