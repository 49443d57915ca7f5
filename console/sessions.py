"""Console sessions: a signed cookie, nothing kept on the server.

The cookie holds who signed in, their CSRF token and when they last used the console,
signed with HMAC-SHA256. A session ends after ``idle`` seconds without a request (each
request moves the time on), when its signature does not match (another key: the console
restarted without ``ASSETSYNC_CONSOLE_SECRET``), or on sign-out. The password never
reaches it: the console checks it with Jira once, at sign-in, and forgets it.

Before sign-in the cookie carries only a CSRF token, so that the sign-in form cannot be
posted from another site either; signing in issues a new token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

COOKIE = "assetsync_console"
MAX_COOKIE_BYTES = 4096


@dataclass(frozen=True)
class Session:
    """What the cookie says. ``user`` is None before sign-in."""

    csrf: str
    used_at: float
    user: str | None = None
    display_name: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.user is not None


class SessionCodec:
    """Signs and reads session cookies.

    :param key: the signing key (``ASSETSYNC_CONSOLE_SECRET``, or random per process).
    :param idle: seconds without use after which a session ends.
    :param clock: wall-clock seconds (tests pass their own).
    """

    def __init__(self, *, key: bytes, idle: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"assetsync console session\0" + key).digest()
        self._idle = idle
        self._clock = clock

    def new(self, *, user: str | None = None, display_name: str | None = None) -> Session:
        """A new session with a fresh CSRF token (anonymous, or signed in as ``user``)."""
        return Session(
            csrf=secrets.token_urlsafe(24),
            used_at=self._clock(),
            user=user,
            display_name=display_name,
        )

    def touch(self, session: Session) -> Session:
        return replace(session, used_at=self._clock())

    def encode(self, session: Session) -> str:
        body = (
            base64.urlsafe_b64encode(json.dumps(asdict(session), separators=(",", ":")).encode())
            .decode()
            .rstrip("=")  # a cookie value without "=" needs no quoting
        )
        return f"{body}.{self._sign(body)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session the cookie holds, or None when it is absent, forged, malformed
        or idle too long."""
        if not cookie or len(cookie) > MAX_COOKIE_BYTES:
            return None
        body, _, signature = cookie.rpartition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = Session(**fields)
        except (ValueError, TypeError, binascii.Error):
            return None  # signed by us, so only an older layout: start again
        if not isinstance(session.csrf, str) or not isinstance(session.used_at, int | float):
            return None
        if self._clock() - session.used_at > self._idle:
            return None
        return session

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_token(session: Session, sent: str | None) -> bool:
    """Whether a form carried this session's CSRF token (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())
