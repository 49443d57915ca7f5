"""What the health section shows: each work queue's depth and how many consumers the
broker sees on it (each worker replica consumes every work queue once), read with a
passive declare: no message is touched; and what the webhook receiver and the
security-log sources say on their ``/healthz``, read-only endpoints that need no
credential (the console gains no right by asking)."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pika
import pika.exceptions

from schemas.topology import Topology


@dataclass(frozen=True)
class QueueState:
    name: str
    purpose: str
    ready: int | None  # None: the queue does not exist (nothing ran with this prefix)
    consumers: int


def queues(url: str, topology: Topology, *, timeout: float = 5.0) -> list[QueueState]:
    """:raises OSError, pika.exceptions.AMQPError: RabbitMQ cannot be asked."""
    params = pika.URLParameters(url)
    params.socket_timeout = params.stack_timeout = params.blocked_connection_timeout = timeout
    params.connection_attempts = 1
    wanted = [
        (topology.login_queue, "logins and Jira's user events"),
        (topology.user_sync_queue, "per-user messages of bulk runs"),
        (topology.bulk_queue, "bulk run requests"),
        (topology.dead_queue, "dead letters"),
    ]
    found = []
    connection = pika.BlockingConnection(params)
    try:
        for name, purpose in wanted:
            channel = connection.channel()
            try:
                ok = channel.queue_declare(name, passive=True).method
                found.append(
                    QueueState(name, purpose, int(ok.message_count), int(ok.consumer_count))
                )
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                found.append(QueueState(name, purpose, None, 0))
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            connection.close()
    return found


# A status answer is a few hundred bytes; a larger one is not read (a page must not
# hold what an endpoint, a proxy in front of it or a wrong URL sends back).
MAX_STATUS_BYTES = 64 * 1024


def _status(base_url: str, *, timeout: float) -> object:
    """The JSON of ``base_url``'s ``/healthz``, read within ``timeout`` seconds in all
    (httpx's timeout bounds each read, not a server that answers a byte at a time).

    :raises httpx.HTTPError, ValueError: no answer, or one too large, too slow, too deep or
        not JSON.
    """
    started = time.monotonic()
    body = bytearray()
    with httpx.stream("GET", base_url.rstrip("/") + "/healthz", timeout=timeout) as answer:
        for chunk in answer.iter_bytes():
            body += chunk
            if len(body) > MAX_STATUS_BYTES:
                raise ValueError(f"an answer over {MAX_STATUS_BYTES} bytes")
            if time.monotonic() - started > timeout:
                raise ValueError(f"no whole answer within {timeout:g} s")
    try:
        return json.loads(body)
    except RecursionError:  # small enough to read, too deep to parse
        raise ValueError("an answer nested too deeply") from None


def webhook_receiver(base_url: str, *, timeout: float = 3.0) -> dict[str, object]:
    """What the webhook receiver's ``/healthz`` says (broker, deliveries published, the
    last one's time), or why it could not be asked."""
    try:
        found = _status(base_url, timeout=timeout)
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": f"the webhook receiver at {base_url} does not answer ({exc})"}
    if not isinstance(found, dict):
        return {"error": f"the webhook receiver at {base_url} answered something else"}
    return {k: found.get(k) for k in ("status", "broker", "published", "last_published_at")}


SECURITY_LOG_FIELDS = (
    "status",
    "file",
    "position",
    "behind_bytes",
    "lines",
    "published",
    "last_published_at",
    "last_login_at",
    "broker",
)


def security_log_source(base_url: str, *, timeout: float = 3.0) -> dict[str, object]:
    """What a security-log source's ``/healthz`` says (the file it follows, its position,
    lines read, the last login published, bytes behind), or why it could not be asked."""
    where = {"url": base_url}
    try:
        found = _status(base_url, timeout=timeout)
    except (httpx.HTTPError, ValueError) as exc:
        return {**where, "error": f"the security-log source at {base_url} does not answer ({exc})"}
    if not isinstance(found, dict) or not isinstance(found.get("position") or {}, dict):
        return {**where, "error": f"the security-log source at {base_url} answered something else"}
    return {**where, **{k: found.get(k) for k in SECURITY_LOG_FIELDS}}


def security_log_sources(urls: tuple[str, ...]) -> list[dict[str, object]]:
    """Each source's answer, asked all at once: one node down costs the page one timeout."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(len(urls), 8)) as pool:
        return list(pool.map(security_log_source, urls))
