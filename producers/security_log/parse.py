"""One line of ``atlassian-jira-security.log`` -> a login, or why it is not one.

Jira writes every authentication there, e.g. (before 9.5, Log4j 1)::

    2023-06-09 05:10:21,968+0000 http-nio-8080-exec-14 admin 310x2803x1 zokxj2 10.0.0.7 \
/rest/gadget/1.0/login The user 'admin' has PASSED authentication.

The columns between the timestamp and the message (thread, user, request id, HTTP session id,
address, URL) changed with the move to Log4j2 in 9.5 and may be empty; they are not
used. What is used: the timestamp at the start of the line and the message
``The user '<name>' has PASSED authentication``. The name in the message is the one
that authenticated; the user column is often ``anonymous`` at that moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

_TIMESTAMP = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:[,.](\d{1,9}))?"
    rb" ?(Z|[+-]\d{2}:?\d{2})?(?=\s)"
)
# Greedy: a name may itself contain "' has " (quotes are legal in usernames).
_AUTH = re.compile(rb"The user '(.*)' has (PASSED|FAILED) authentication")
ANONYMOUS = frozenset({"", "anonymous"})


class Skip(Enum):
    """Why a line is not a login."""

    OTHER = "other"  # a line of the log that is not an authentication
    FAILED = "failed"
    ANONYMOUS = "anonymous"
    UNPARSABLE = "unparsable"  # no timestamp, or a name that is not text


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    at: datetime


def parse_line(line: bytes) -> Login | Skip:
    """Classify one line (without its newline). Never raises."""
    stamp = _TIMESTAMP.match(line)
    if stamp is None:
        return Skip.UNPARSABLE
    if b"authentication" not in line:  # most lines of a busy log: cheap test first
        return Skip.OTHER
    auth = _AUTH.search(line, stamp.end())
    if auth is None:
        return Skip.OTHER
    if auth.group(2) == b"FAILED":
        return Skip.FAILED
    try:
        name = auth.group(1).decode()
    except UnicodeDecodeError:
        return Skip.UNPARSABLE
    if name.strip().lower() in ANONYMOUS:
        return Skip.ANONYMOUS
    at = _when(stamp)
    return Login(name, at) if at is not None else Skip.UNPARSABLE


def _when(stamp: re.Match[bytes]) -> datetime | None:
    year, month, day, hour, minute, second, fraction, zone = stamp.groups()
    micros = int((fraction or b"0")[:6].ljust(6, b"0"))
    try:
        at = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    except ValueError:
        return None
    if zone is None:
        return at.astimezone()  # no offset written: the local time of this host
    if zone == b"Z":
        return at.replace(tzinfo=UTC)
    digits = zone.replace(b":", b"")
    offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
    if offset >= timedelta(hours=24):
        return None
    return at.replace(tzinfo=timezone(-offset if digits[:1] == b"-" else offset))
