"""The HTTP side: ``POST /webhooks/jira``, ``GET /healthz`` and ``GET /metrics`` (Starlette).

Per delivery: size limit (413), signature (401), delivery id already published (200,
nothing published), body (400 with a one-line reason), publish and wait for the
broker's confirm (200), or 503 when RabbitMQ did not confirm in time, so Jira retries.
Every answer is one line of text; request bodies are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from producers.webhooks import payload
from producers.webhooks.dedup import RecentDeliveries
from producers.webhooks.publishing import BrokerUnavailable, Publishers
from schemas.messages import UserChanged, utc_now

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/jira"


@dataclass
class Counters:
    """What /healthz reports, answers given since start by outcome, and the same for
    Prometheus on /metrics (``assetsync_webhook_deliveries_total``)."""

    published: int = 0
    last_published_at: str | None = None  # when the last delivery was published (UTC)
    duplicate: int = 0
    skipped: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    # Connections closed unanswered (or refused before their request) by reason.
    closed: dict[str, int] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._deliveries = Counter(
            "assetsync_webhook_deliveries_total",
            "Jira webhook deliveries answered, by outcome (published, duplicate, skipped,"
            " refused) and HTTP status.",
            ["outcome", "status"],
            registry=self.registry,
        )
        self._closed = Counter(
            "assetsync_webhook_connections_closed_total",
            "Connections the receiver closed or refused to protect itself from slow or"
            " too many clients, by reason (header_timeout, body_timeout, pushed_out,"
            " too_many_connections, body_budget).",
            ["reason"],
            registry=self.registry,
        )

    def close(self, reason: str) -> None:
        self.closed[reason] = self.closed.get(reason, 0) + 1
        self._closed.labels(reason).inc()

    def count(self, outcome: str, status: int = 200) -> None:
        if outcome == "refused":
            self.refused[status] = self.refused.get(status, 0) + 1
        else:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if outcome == "published":
            self.last_published_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._deliveries.labels(outcome, str(status)).inc()

    def refuse(self, status: int) -> None:
        self.count("refused", status)


class Receiver:
    """
    :param secret: the webhook secret; None accepts unsigned deliveries (insecure mode).
    :param publisher: the thread that publishes and waits for confirms.
    :param max_bytes: larger bodies are refused with 413, unread.
    :param confirm_timeout: seconds a request waits for the broker before answering 503
        (Jira Cloud gives up on a delivery after about 20 s).
    :param recent: delivery ids already published.
    """

    def __init__(
        self,
        *,
        secret: bytes | None,
        publisher: Publishers,
        max_bytes: int,
        confirm_timeout: float = 10.0,
        recent: RecentDeliveries | None = None,
    ) -> None:
        self.secret = secret
        self.publisher = publisher
        self.max_bytes = max_bytes
        self.confirm_timeout = confirm_timeout
        self.recent = recent or RecentDeliveries()
        self.counters = Counters()
        # A retry that arrives while the first delivery is still being confirmed waits
        # for that confirm instead of publishing a second copy.
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            self.publisher.start()
            try:
                yield
            finally:
                # uvicorn has answered every request by now: publish what is left, close.
                await asyncio.to_thread(self.publisher.stop)

        return Starlette(
            routes=[
                Route(WEBHOOK_PATH, self.receive, methods=["POST"]),
                Route("/healthz", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    async def health(self, request: Request) -> Response:
        alive = self.publisher.alive
        body = {
            "status": "ok" if alive else "publisher thread stopped",
            "broker": {None: "not tried yet", True: "up", False: "down"}[self.publisher.broker_up],
            "published": self.counters.published,
            "last_published_at": self.counters.last_published_at,
            "duplicates": self.counters.duplicate,
            "skipped": self.counters.skipped,
            "refused": {str(k): v for k, v in sorted(self.counters.refused.items())},
            "connections_closed": dict(sorted(self.counters.closed.items())),
        }
        # Liveness only: a broker outage must not get every receiver restarted.
        return JSONResponse(body, status_code=200 if alive else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.counters.registry), media_type=CONTENT_TYPE_LATEST)

    async def receive(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        try:
            body = await self._read_body(request)
        except _TooLarge:
            return self._refuse(413, f"body over {self.max_bytes} bytes", client)
        except ClientDisconnect:
            # Gone, or closed by the slow-client guard (counted there): nobody to answer.
            log.debug("%s disconnected before sending the whole body", client)
            return PlainTextResponse("", status_code=400)
        if self.secret is not None:
            problem = payload.signature_problem(
                self.secret, body, request.headers.get(payload.SIGNATURE_HEADER)
            )
            if problem is not None:
                return self._refuse(401, problem, client, level=logging.WARNING)
        try:
            delivery = payload.delivery_id(request.headers.get(payload.DELIVERY_HEADER))
            if delivery is not None and delivery in self.recent:
                self.counters.count("duplicate")
                log.info("delivery %r was already published; not again", delivery)
                return PlainTextResponse(f"duplicate delivery {delivery}, already published\n")
            event = payload.parse(body, delivery=delivery, received_at=utc_now())
        except payload.BadDelivery as exc:
            return self._refuse(400, str(exc), client)
        if isinstance(event, payload.Skipped):
            self.counters.count("skipped")
            log.info("not syncing %s", event.reason)
            return PlainTextResponse(f"ignored: {event.reason}\n")
        return await self._publish(event, client)

    async def _publish(self, event: UserChanged, client: str) -> Response:
        delivery = event.delivery
        pending = self._in_flight.get(delivery) if delivery else None
        if pending is not None:
            try:
                await asyncio.shield(pending)
            except BrokerUnavailable as exc:
                return self._refuse(503, str(exc), client)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request itself is being cancelled
                return self._refuse(503, "RabbitMQ did not confirm in time", client)
            self.counters.count("duplicate")
            return PlainTextResponse(f"duplicate delivery {delivery}, already published\n")
        confirm = self.publisher.submit(event)
        waiting = asyncio.wrap_future(confirm)
        # Retrieved here so that an outcome no request waits for any more is not
        # reported as "never retrieved".
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
        if delivery:
            self._in_flight[delivery] = waiting
        try:
            await asyncio.wait_for(asyncio.shield(waiting), self.confirm_timeout)
        except TimeoutError:
            _give_up(confirm)
            return self._refuse(503, "RabbitMQ did not confirm in time", client)
        except BrokerUnavailable as exc:
            return self._refuse(503, str(exc), client)
        finally:
            if delivery:
                self._in_flight.pop(delivery, None)
        if delivery:
            self.recent.add(delivery)
        self.counters.count("published")
        log.info(
            "published user-changed %s %s%s",
            event.change,
            _who(event),
            f" (delivery {delivery!r})" if delivery else "",
        )
        return PlainTextResponse(f"published user-changed {event.event_id}\n")

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(
        self, status: int, reason: str, client: str, *, level: int = logging.INFO
    ) -> Response:
        self.counters.refuse(status)
        log.log(level, "answered %d to %s: %s", status, client, reason)
        return PlainTextResponse(reason + "\n", status_code=status)


class _TooLarge(Exception):
    pass


def _give_up(confirm: Future[None]) -> None:
    # Not sent yet: drop it (Jira sends it again). Already sent: it may still be
    # confirmed, and Jira's retry is then a harmless duplicate.
    confirm.cancel()


def _who(event: UserChanged) -> str:
    if event.account_id:
        return f"accountId={event.account_id!r}"
    parts = [("key", event.user_key), ("name", event.username)]
    return " ".join(f"{label}={value!r}" for label, value in parts if value)
