"""``worker.logs``: what a log collector or a person reading stderr gets, captured from
the real handler that ``python -m worker`` installs."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from demo.fake_jira import FakeJira
from worker.logs import CHATTY, MAX_FIELD_CHARS, configure, log_context
from worker.settings import Settings

log = logging.getLogger("worker.test")
JIRA_TOKEN = "jira-pat-4f8a1c9e"
AMQP_PASSWORD = "rabbit-pw-93e1"
DB_PASSWORD = "pg-pw-7d2b"


def ops_settings(**values: Any) -> Settings:
    return Settings(
        jira_token=JIRA_TOKEN,
        amqp_url=f"amqp://assetsync:{AMQP_PASSWORD}@rabbit.internal:5672/%2F",
        database_url=f"postgresql://assetsync:{DB_PASSWORD}@pg.internal/assetsync",
        **values,
    )


@pytest.fixture
def capture() -> Iterator[Callable[..., io.StringIO]]:
    """Configure logging as the worker does, into a buffer; undo it afterwards."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *CHATTY)}
    handlers: list[logging.Handler] = []

    def start(**values: Any) -> io.StringIO:
        buffer = io.StringIO()
        handlers.append(configure(ops_settings(**values), stream=buffer))
        return buffer

    yield start
    for handler in handlers:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# ---------------------------------------------------------------------------- JSON


def test_json_gives_one_object_per_line_with_the_context_of_its_block(capture):
    out = capture(log_format="json")

    log.info("before")
    with log_context(queue="assetsync.user-sync", message_id="m-1", run_id="r-9"):
        log.info("batch of %d", 200)
        with log_context(jira_id="JIRAUSER10016", message_id="m-2", username=None):
            log.warning("user %s\nwith a second line", "jdoe")
        log.info("after the inner block")
    log.info("after")

    lines = json_lines(out)
    assert [line["message"] for line in lines] == [
        "before",
        "batch of 200",
        "user jdoe\nwith a second line",
        "after the inner block",
        "after",
    ]
    assert out.getvalue().count("\n") == 5  # the newline in a message is escaped
    first, batch, user, inner_after, after = lines
    assert set(first) == {"time", "level", "logger", "thread", "message"}
    assert first["time"].endswith("Z") and first["level"] == "INFO"
    assert first["logger"] == "worker.test" and first["thread"] == "MainThread"
    assert (batch["queue"], batch["message_id"], batch["run_id"]) == (
        "assetsync.user-sync",
        "m-1",
        "r-9",
    )
    assert (user["message_id"], user["jira_id"], user["run_id"]) == ("m-2", "JIRAUSER10016", "r-9")
    assert "username" not in user
    assert inner_after["message_id"] == "m-1" and "jira_id" not in inner_after
    assert "queue" not in after


def test_each_thread_logs_with_its_own_context(capture):
    out = capture(log_format="json")
    inside, logged = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait(5)
        log.info("from the login loop")
        logged.set()

    thread = threading.Thread(target=other, name="login")
    thread.start()
    with log_context(queue="assetsync.user-sync"):
        inside.set()
        logged.wait(5)
        log.info("from the main loop")
    thread.join(5)

    by_thread = {line["thread"]: line for line in json_lines(out)}
    assert "queue" not in by_thread["login"]
    assert by_thread["MainThread"]["queue"] == "assetsync.user-sync"


def test_a_huge_context_value_from_a_message_is_cut(capture):
    out = capture(log_format="json")

    with log_context(message_id="x" * 100_000):
        log.info("hello")

    [line] = json_lines(out)
    assert len(line["message_id"]) == MAX_FIELD_CHARS


def test_a_traceback_is_one_json_field(capture):
    out = capture(log_format="json")

    try:
        raise RuntimeError("Jira said no")
    except RuntimeError:
        log.exception("unexpected error")

    [line] = json_lines(out)
    assert line["message"] == "unexpected error"
    assert line["exc_info"].startswith("Traceback")
    assert line["exc_info"].endswith("RuntimeError: Jira said no")


def test_httpx_request_lines_come_out_as_json_without_the_url_password(capture, jira: FakeJira):
    out = capture(log_format="json")
    logging.getLogger("httpx").setLevel(logging.INFO)  # quiet by default; its own line
    url = jira.url.replace("http://", f"http://admin:{AMQP_PASSWORD}@")

    with httpx.Client() as client:
        client.get(f"{url}/rest/api/2/serverInfo")

    [line] = [line for line in json_lines(out) if line["logger"] == "httpx"]
    assert line["message"].startswith("HTTP Request: GET ")
    assert "/rest/api/2/serverInfo" in line["message"]
    assert AMQP_PASSWORD not in out.getvalue()


def test_library_loggers_come_out_as_json_and_their_chatter_is_kept_quiet(capture):
    # py-amqp and kombu log through the standard library under their own names: the one
    # handler formats them, and below WARNING they are silenced even at DEBUG (a line per
    # frame otherwise). No broker needed: it is the handler that is under test.
    out = capture(log_format="json", log_level="DEBUG")

    logging.getLogger("amqp").debug("Start from server, version: 0.9")
    logging.getLogger("kombu.connection").warning("connection to amqp://u:%s@h lost", AMQP_PASSWORD)
    logging.getLogger("worker.consumer").debug("ours at DEBUG")

    lines = json_lines(out)
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("kombu.connection", "WARNING"),
        ("worker.consumer", "DEBUG"),
    ]
    assert lines[0]["message"] == "connection to amqp://u:***@h lost"


# ---------------------------------------------------------------------------- text


def test_text_is_the_default_with_the_context_appended(capture):
    out = capture()

    log.info("no context")
    with log_context(queue="assetsync.login", message_id='evil "id"\nwith [brackets]'):
        log.warning("dead-lettering")

    plain, with_context = out.getvalue().splitlines()
    assert plain.endswith(" INFO worker.test: no context")
    assert with_context.endswith(
        " WARNING worker.test: dead-lettering [queue=assetsync.login"
        ' message_id="evil \\"id\\"\\nwith [brackets]"]'
    )


# ------------------------------------------------------------------------- secrets


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_reach_the_log(capture, log_format):
    out = capture(log_format=log_format)

    log.info("connecting to amqp://assetsync:%s@rabbit.internal:5672/%%2F", AMQP_PASSWORD)
    log.info("request headers: %s", {"Authorization": "Basic YWRtaW46c2VjcmV0", "Accept": "*/*"})
    log.info("Authorization: Bearer %s", JIRA_TOKEN)
    log.info("the token is %s", JIRA_TOKEN)
    log.info("conninfo: host=pg.internal user=assetsync password=%s", DB_PASSWORD)
    with log_context(jira_url=f"https://bot:{JIRA_TOKEN}@jira.example.com"):
        try:
            raise ConnectionError(f"cannot reach postgresql://assetsync:{DB_PASSWORD}@pg.internal/")
        except ConnectionError:
            log.exception("store unavailable")

    text = out.getvalue()
    for secret in (AMQP_PASSWORD, DB_PASSWORD, JIRA_TOKEN, "YWRtaW46c2VjcmV0"):
        assert secret not in text
    # What is not secret stays, so the line still says where and what.
    assert "amqp://assetsync:***@rabbit.internal:5672/%2F" in text
    assert "postgresql://assetsync:***@pg.internal/" in text
    assert "https://bot:***@jira.example.com" in text
    assert "'Accept': '*/*'" in text
    assert "Authorization: Bearer ***" in text
    assert "password=***" in text


def test_configuring_again_replaces_the_handler(capture):
    capture()
    out = capture(log_format="json")

    log.info("once")

    assert [line["message"] for line in json_lines(out)] == ["once"]
    installed = [h for h in logging.getLogger().handlers if getattr(h, "_assetsync_handler", 0)]
    assert len(installed) == 1


def test_a_bad_format_call_still_logs_a_line(capture):
    out = capture(log_format="json")
    # Only the worker's handler: pytest's own capture would fail the test on the bad call.
    alone = logging.getLogger("worker.test.alone")
    alone.propagate = False
    [ours] = [h for h in logging.getLogger().handlers if getattr(h, "_assetsync_handler", 0)]
    alone.addHandler(ours)
    try:
        alone.info("%d users", "many")
    finally:
        alone.handlers.clear()
        alone.propagate = True

    [line] = json_lines(out)
    assert line["message"] == "'%d users' (could not format with 1 args)"


# ------------------------------------------------------------------------ forgery

FORGED = "\n2026-01-01 00:00:00,000 CRITICAL worker: FORGED\x1b[2J\r"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_value_from_outside_starts_a_line_or_reaches_the_terminal(capture, log_format):
    """Whatever a message, an exception text or a context value holds, each record
    starts one line of its own and nothing but it; no escape sequence is written."""
    buffer = capture(log_format=log_format)
    with log_context(message_id="m" + FORGED):
        log.warning("dead-lettering %s: %s", "'user-logged-in'", "schema violation" + FORGED)
        try:
            raise ValueError("bad" + FORGED)
        except ValueError:
            log.exception("failed on %s", "x" + FORGED)

    lines = buffer.getvalue().splitlines()
    assert "\x1b" not in buffer.getvalue() and "\r" not in buffer.getvalue()
    assert not any(line.startswith("2026-01-01") for line in lines)
    if log_format == "json":
        assert len(lines) == 2 and all(json.loads(line) for line in lines)
    else:
        starts = [line for line in lines if not line.startswith("  ")]
        assert len(starts) == 2, lines  # the traceback's lines are all indented
        assert (
            "schema violation\\n2026-01-01 00:00:00,000 CRITICAL worker: FORGED\\x1b[2J\\r"
            in (starts[0])
        )
        assert "  ValueError: bad" in lines
