"""People who sign in to the fake Jira with their own password or token, and which of
them are Jira administrators (the console lets only those in).

Like Jira, three wrong passwords in a row for one account make Jira ask for a CAPTCHA:
from then on a REST call with that account's password is refused without being checked
(``X-Seraph-LoginReason: AUTHENTICATION_DENIED``), until ``clear_captcha``.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass

CAPTCHA_AFTER = 3  # Jira's default: a CAPTCHA after three failed sign-ins


@dataclass
class Account:
    login: str  # Data Center username, Cloud e-mail address
    secret: str  # password, API token or personal access token
    administrator: bool
    display_name: str
    account_id: str
    failures: int = 0

    @property
    def captcha(self) -> bool:
        return self.failures >= CAPTCHA_AFTER


class Accounts:
    """The fake Jira's sign-in accounts besides its service account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_login: dict[str, Account] = {}

    def add(
        self,
        login: str,
        secret: str,
        *,
        administrator: bool,
        display_name: str | None = None,
    ) -> Account:
        with self._lock:
            account = Account(
                login=login,
                secret=secret,
                administrator=administrator,
                display_name=display_name or login,
                account_id=f"5b10ac8d82e05b22cc7d{len(self._by_login):04d}",
            )
            self._by_login[login.lower()] = account
            return account

    def clear_captcha(self, login: str) -> None:
        with self._lock:
            self._by_login[login.lower()].failures = 0

    def by_token(self, token: str) -> Account | None:
        """The account whose personal access token this is (Bearer)."""
        with self._lock:
            for account in self._by_login.values():
                if hmac.compare_digest(account.secret.encode(), token.encode()):
                    return account
        return None

    def check(self, login: str, secret: str) -> tuple[str, Account | None]:
        """``("ok", account)``, ``("wrong", account)``, ``("captcha", account)``, or
        ``("unknown", None)`` when no such account signs in here."""
        with self._lock:
            account = self._by_login.get(login.lower())
            if account is None:
                return "unknown", None
            if account.captcha:
                return "captcha", account
            if not hmac.compare_digest(account.secret.encode(), secret.encode()):
                account.failures += 1
                return "wrong", account
            account.failures = 0
            return "ok", account
