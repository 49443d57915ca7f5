"""The security-log source's status endpoint, on ``ASSETSYNC_SECURITY_LOG_LISTEN``:

* ``/healthz``: JSON (``status.report``): the file followed, the position, the counts,
  the last login published, how far behind. 200 while the source runs, whatever the
  broker does (a broker outage must not get it restarted: it keeps its position and
  waits); ``status`` says ``behind`` when bytes of the log are not published yet.
* ``/metrics``: the same in Prometheus' text format.

Read-only: ``GET`` only, nothing it answers changes the source. The console's Health
page reads ``/healthz`` (``ASSETSYNC_CONSOLE_SECURITY_LOG_URLS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from producers.security_log.status import SourceStatus, report
from worker.probes import StartResponse, start_server


def serve(*, status: SourceStatus, host: str, port: int) -> tuple[Callable[[], None], int]:
    """Serve the endpoint from a thread: what stops it, and its port.

    :raises OSError: the address cannot be listened on.
    """
    return start_server(app(status), host=host, port=port, name="security-log status")


def app(status: SourceStatus) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    registry = CollectorRegistry()
    registry.register(_Collector(status))
    metrics = make_wsgi_app(registry)

    def answer(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b"read-only: GET /healthz or /metrics\n"]
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path != "/healthz":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: /healthz and /metrics are here\n"]
        body = json.dumps(report(status.snapshot())).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        )
        return [body]

    return answer


class _Collector(Collector):
    """Read from the status when Prometheus scrapes: one record, two views."""

    def __init__(self, status: SourceStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        found = report(self._status.snapshot())
        lines = CounterMetricFamily(
            "assetsync_security_log_lines",
            "Lines of the security log read, by outcome (published, folded, ignored,"
            " unparsable; a published line is one login).",
            labels=["outcome"],
        )
        for outcome in ("published", "folded", "ignored", "unparsable"):
            lines.add_metric([outcome], found[outcome])
        yield lines
        if found["behind_bytes"] is not None:
            yield GaugeMetricFamily(
                "assetsync_security_log_behind_bytes",
                "Bytes of the log not yet published and saved (0: caught up).",
                value=found["behind_bytes"],
            )
        published = self._status.snapshot().last_published_at
        if published is not None:
            yield GaugeMetricFamily(
                "assetsync_security_log_last_published_timestamp_seconds",
                "When RabbitMQ confirmed the last login published (Unix time).",
                value=published.timestamp(),
            )
        yield GaugeMetricFamily(
            "assetsync_security_log_broker_up",
            "1 when the last attempt to publish reached RabbitMQ, 0 when it did not.",
            value=1.0 if found["broker"] == "up" else 0.0,
        )
