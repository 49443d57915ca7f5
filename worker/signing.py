"""Authenticating the workers' own messages: a bulk run's per-user ``user-sync`` carries
a Jira snapshot that the worker writes as it is, so a worker must know that another
worker made it, not anyone who may publish to the exchange.

Each body is signed with HMAC-SHA256 under a key only the workers hold; the signature
travels in the header ``assetsync-signature`` (``key=<id>;hmac-sha256=<hex>``) and
survives retries and dead letters, which copy headers. Keys rotate
(``python -m worker rotate-key``): the workers sign with the newest and accept the
previous ones until their ``retires_at``. Key 1 (0.2.0's key, or ``ASSETSYNC_SIGNING_KEY``)
signs without a key id, as 0.2.0 did, so that 0.2.0 replicas and messages they signed
keep working during an upgrade.

The ring is read from the asset store (``worker.store.keys``) at start, every
``refresh`` seconds, and when a signature names a key the ring does not know yet
(another replica saw the rotation first), at most once a second.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.messages import USER_SYNC
from worker.broker import Outgoing
from worker.errors import ConfigError, InvalidMessage, TransientError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "assetsync-signature"
SCHEME = "hmac-sha256="
LEGACY_KEY_ID = 1
UNKNOWN_KEY_RELOAD = 1.0  # seconds between reloads asked for by unknown key ids


@dataclass(frozen=True)
class SigningKey:
    """
    :param id: what signatures name it by.
    :param secret: at least 16 bytes.
    :param retires_in: seconds (from when the ring was read) it is still accepted;
        None for the key in use.
    """

    id: int
    secret: bytes
    retires_in: float | None = None

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ConfigError("ASSETSYNC_SIGNING_KEY: must be at least 16 bytes long")

    @functools.cached_property
    def _keyed(self) -> hmac.HMAC:
        # Keyed once: each signature copies it rather than hashing the key's pads anew.
        return hmac.new(self.secret, digestmod=hashlib.sha256)

    def mac(self, body: bytes) -> str:
        """The body's HMAC-SHA256 under this key, in hex."""
        mac = self._keyed.copy()
        mac.update(body)
        return mac.hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """The keys in force as read at ``read_at`` (a ``time.monotonic()`` value)."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()
    read_at: float = 0.0

    def sign(self, body: bytes) -> str:
        return signature(self.current, body)

    def find(self, key_id: int) -> SigningKey | None:
        for key in (self.current, *self.previous):
            if key.id == key_id:
                return key
        return None

    def accepts(self, key: SigningKey, now: float) -> bool:
        return key.retires_in is None or now < self.read_at + key.retires_in


def signature(key: SigningKey, body: bytes) -> str:
    digest = SCHEME + key.mac(body)
    return digest if key.id == LEGACY_KEY_ID else f"key={key.id};{digest}"


def key_id_of(given: str) -> int | None:
    """The key a signature names (key 1 when it names none); None when it is not one."""
    if not given.startswith("key="):
        return LEGACY_KEY_ID
    named, sep, _ = given[4:].partition(";")
    if not sep or not named.isdigit() or len(named) > 9:
        return None
    return int(named)


class Signer:
    """Signs and checks message bodies with the key ring, kept fresh.

    :param ring: the keys read at start.
    :param reload: reads the ring again (None: a fixed key, ``ASSETSYNC_SIGNING_KEY``).
    :param refresh: seconds between reloads.
    :param clock: ``time.monotonic`` or a stand-in.
    """

    def __init__(
        self,
        ring: KeyRing,
        *,
        reload: Callable[[], KeyRing] | None = None,
        refresh: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ring = ring
        self._reload = reload
        self._refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._asked_at = self._tried_at = float("-inf")

    @classmethod
    def fixed(cls, secret: bytes) -> Signer:
        """One key that never changes (``ASSETSYNC_SIGNING_KEY``)."""
        return cls(KeyRing(SigningKey(LEGACY_KEY_ID, secret)))

    @property
    def ring(self) -> KeyRing:
        now = self._clock()
        last = max(self._ring.read_at, self._tried_at)
        if self._reload is not None and now - last >= self._refresh:
            self._read(now)
        return self._ring

    def sign(self, body: bytes) -> str:
        return self.ring.sign(body)

    def check(self, body: bytes, headers: Mapping[str, Any] | None) -> None:
        """:raises InvalidMessage: the body is unsigned, not signed with a key of the
        workers, or signed with one retired since."""
        given = (headers or {}).get(SIGNATURE_HEADER)
        if given is None:
            raise InvalidMessage("unsigned: only workers may publish this message type")
        if isinstance(given, bytes):
            given = given.decode("latin-1")
        key_id = key_id_of(given) if isinstance(given, str) else None
        ring = self.ring
        key = ring.find(key_id) if key_id is not None else None
        if key is None and key_id is not None and self._reload is not None:
            now = self._clock()
            if now - self._asked_at >= UNKNOWN_KEY_RELOAD:
                self._asked_at = now
                ring = self._read(now)
                key = ring.find(key_id)
        if key is None or not hmac.compare_digest(given, signature(key, body)):
            raise InvalidMessage("bad signature: only workers may publish this message type")
        if not ring.accepts(key, self._clock()):
            raise InvalidMessage(f"signed with signing key {key.id}, retired since")

    def _read(self, now: float) -> KeyRing:
        assert self._reload is not None
        with self._lock:
            if max(self._ring.read_at, self._tried_at) < now:
                self._tried_at = now
                try:
                    self._ring = self._reload()
                except TransientError as exc:
                    # The asset store is away: nothing can be written now anyway; the
                    # keys are read again after the next interval.
                    log.warning("could not read the signing keys again: %s", exc)
            return self._ring


def signed_user_syncs(bodies: Sequence[bytes], *, exchange: str, signer: Signer) -> list[Outgoing]:
    """``user-sync`` bodies as messages to publish, each signed with the key in use."""
    ring = signer.ring
    return [
        Outgoing(
            body=b,
            exchange=exchange,
            routing_key=USER_SYNC,
            headers={SIGNATURE_HEADER: ring.sign(b)},
        )
        for b in bodies
    ]
