"""Log lines: text for people (the default) or one JSON object per line for log
collectors (``ASSETSYNC_LOG_FORMAT=json``), each carrying what the code was working on.

Every record goes through one handler on the root logger, so kombu's, py-amqp's and
httpx's own lines come out in the same format as ours. Two filters sit on that handler:

* the *context* filter adds the fields of the innermost ``log_context`` block (message
  id, queue, run id, Jira identity...) of the thread that logs;
* the *redacting* filter masks secrets in the rendered message, traceback and context:
  passwords in URLs (``amqp://user:***@host``), ``Authorization`` header values,
  ``password=`` pairs, and the literal secrets from the settings.

The JSON formatter is python-json-logger's: a stdlib ``logging.Formatter``, so library
loggers need no change and no bridge (structlog would need its stdlib bridge for
exactly those lines, and a second logging style in our own code).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Literal, Protocol, TextIO
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from worker.text import printable

# Libraries that log a line per request or frame at INFO/DEBUG; ours say what matters.
CHATTY = ("httpx", "httpcore", "yoyo", "amqp", "kombu", "pika")
# pika logs every failed connection step at ERROR, then raises; the producers report what
# it raises in one line of their own, so its lines would only say the same thing, worse.
SILENT = ("pika",)
MAX_FIELD_CHARS = 200  # a context value comes from a message: bound what it can add
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_CONTEXT_ATTR = "assetsync_context"  # where the context filter leaves the fields
_RESERVED = frozenset({*RESERVED_ATTRS, "message", "asctime", _CONTEXT_ATTR})

_NO_CONTEXT: Mapping[str, object] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "assetsync_log_context", default=_NO_CONTEXT
)


class LogSettings(Protocol):
    """What ``configure`` reads of the worker's settings."""

    @property
    def log_level(self) -> str: ...
    @property
    def log_format(self) -> Literal["text", "json"]: ...


# ------------------------------------------------------------------------- context


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add ``fields`` to every line logged in this block by this thread.

    Blocks nest (inner fields are added to, or replace, outer ones); a field given as
    None is left out. Values are cut to ``MAX_FIELD_CHARS``: they often come from a
    message. Usual names: ``message_id``, ``queue``, ``message_type``, ``run_id``,
    ``jira_id``, ``username``.
    """
    clash = sorted(set(fields) & _RESERVED)
    if clash:
        raise ValueError(f"log context field(s) {', '.join(clash)} would hide a record field")
    added = {k: _bounded(v) for k, v in fields.items() if v is not None}
    token = _context.set({**_context.get(), **added})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, object]:
    return dict(_context.get())


def _bounded(value: object) -> object:
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


class ContextFilter(logging.Filter):
    """Puts the logging thread's context on the record, as attributes (JSON fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        setattr(record, _CONTEXT_ATTR, fields)
        for name, value in fields.items():
            if not hasattr(record, name):  # an explicit ``extra=`` wins
                setattr(record, name, value)
        return True


# ----------------------------------------------------------------------- redaction

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/:@]*):[^\s/@]*@")
_AUTHORIZATION = re.compile(
    r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
    r"((?:basic|bearer|token|digest)\s+)?[^\s'\",;}\]]+"
)
_URL = re.compile(r"(?i)^[a-z][a-z0-9+.\-]*://")
_PASSWORD_PAIR = re.compile(r"(?i)\b(password|passwd|pwd)=[^\s&;'\"]+")
MIN_SECRET_CHARS = 6  # shorter literals are too likely to mask ordinary words


class Redactor:
    """Masks secrets in text. Literal ``secrets`` shorter than ``MIN_SECRET_CHARS`` are
    ignored (URLs, headers and ``password=`` pairs are masked whatever their length).

    :param secrets: values that must never appear, e.g. the Jira token.
    """

    def __init__(self, *, secrets: Iterable[str] = ()) -> None:
        literal = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal))) if literal else None

    def __call__(self, text: str) -> str:
        text = _URL_USERINFO.sub(r"\1:***@", text)
        text = _AUTHORIZATION.sub(lambda m: f"{m[1]}{m[2] or ''}***", text)
        text = _PASSWORD_PAIR.sub(r"\1=***", text)
        if self._literal is not None:
            text = self._literal.sub("***", text)
        return text


class RedactingFilter(logging.Filter):
    """Renders each record's message and traceback once, with secrets masked, before
    any formatter sees them."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact
        self._plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not take the logging thread down
            message = f"{record.msg!r} (could not format with {len(record.args or ())} args)"
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = self._redact(self._plain.formatException(record.exc_info))
            record.exc_info = None  # formatters use the redacted exc_text instead
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        fields = getattr(record, _CONTEXT_ATTR, {})
        for name, value in fields.items():
            if isinstance(value, str) and getattr(record, name, None) == value:
                setattr(record, name, self._redact(value))
        return True


# ----------------------------------------------------------------------- formatters


def _utc_iso(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """The classic line, with the context appended as ``key=value`` (values with spaces
    or quotes quoted), so grep finds a message id in either format.

    A record is one line, whatever its message quotes: control characters in the
    message are escaped (a newline in a value from outside cannot start a forged line,
    an escape sequence cannot reach a terminal). A traceback follows on lines of its
    own, each indented, so none can pass for a record either."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        kept = record.exc_text, record.stack_info
        record.exc_text, record.stack_info = map(_continued, kept)
        try:
            return super().format(record)
        finally:
            record.exc_text, record.stack_info = kept

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        line = super().formatMessage(record)
        fields: Mapping[str, object] = getattr(record, _CONTEXT_ATTR, {})
        if not fields:
            return line
        pairs = " ".join(f"{k}={_quoted(getattr(record, k, v))}" for k, v in fields.items())
        return f"{line} [{pairs}]"


def _continued(text: str | None) -> str | None:
    """Lines that follow a record's own: escaped, and indented."""
    if not text:
        return text
    return "\n".join("  " + printable(line) for line in text.splitlines())


def _quoted(value: object) -> str:
    text = str(value)
    if text and not re.search(r"[\s\"'\[\]=\\]|[^\x20-\x7e]", text):
        return text
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``thread``, ``message``, then the context fields and ``exc_info`` if any."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{threadName}{message}",
            style="{",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "threadName": "thread",
            },
            reserved_attrs=sorted(_RESERVED - {"message", "asctime"}),
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record)


# ---------------------------------------------------------------------------- setup

_INSTALLED = "_assetsync_handler"


def configure(settings: LogSettings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in the configured format.

    Replaces the handler a previous call installed, so calling it again (tests) does not
    double the lines. Returns the handler.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _INSTALLED, True)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(Redactor(secrets=secrets_of(settings))))
    handler.setFormatter(JsonLineFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in SILENT:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return handler


def secrets_of(settings: object) -> list[str]:
    """Every secret value among the settings' ``SecretStr`` fields; of a URL, only its
    password (the rest says where, which a log line should)."""
    found: list[str] = []
    for value in vars(settings).values():
        if not isinstance(value, SecretStr):
            continue
        secret = value.get_secret_value()
        if not _URL.match(secret):
            found.append(secret)
            continue
        password = urlsplit(secret).password
        if password:
            found += [password, unquote(password)]
    return found
