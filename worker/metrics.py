"""What a replica counts, for Prometheus: ``assetsync_*`` in base units, counters ending
in ``_total`` (the names follow dramatiq's middleware and celery-exporter where they fit).

One ``Metrics`` per replica, built where the replica is composed (``worker.replica``)
and passed down; everything here is cheap enough for the bulk path because it is
counted per batch, not per message. The
values that live in the database (the bulk run in progress, the connection pool) are
read when Prometheus scrapes, by ``StoreCollector``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: from a few milliseconds (an unchanged login) to minutes (a retried one).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """Every metric of a replica, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "assetsync_messages_total",
            "Deliveries settled, by queue and outcome (synced, retried, dead_lettered, requeued,"
            " discarded: a copy of a dead letter not used).",
            ["queue", "outcome"],
            registry=r,
        )
        self.processing = Histogram(
            "assetsync_message_processing_seconds",
            "Time to handle one batch of deliveries (one transaction), by queue.",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "assetsync_messages_in_progress",
            "Deliveries being handled now, by queue.",
            ["queue"],
            registry=r,
        )
        self.retries = Counter(
            "assetsync_retries_total",
            "Deliveries republished to a delay queue, by queue and delay in seconds.",
            ["queue", "delay_seconds"],
            registry=r,
        )
        self.assets = Counter(
            "assetsync_assets_total",
            "User assets written or found up to date, by source (login, event, bulk)"
            " and outcome (created, updated, unchanged).",
            ["source", "outcome"],
            registry=r,
        )
        self.login_latency = Histogram(
            "assetsync_login_latency_seconds",
            "From a login's occurred_at to its asset's commit.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.jira_requests = Counter(
            "assetsync_jira_requests_total",
            "Requests to Jira, by endpoint (path) and HTTP status (or 'error').",
            ["endpoint", "status"],
            registry=r,
        )
        self.jira_seconds = Histogram(
            "assetsync_jira_request_seconds",
            "Time Jira took to answer, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "assetsync_bulk_runs_total",
            "Bulk runs this replica saw end, by final state (done, failed).",
            ["state"],
            registry=r,
        )
        self.stalled_runs = Counter(
            "assetsync_bulk_runs_stalled_total",
            "Bulk runs this replica ended failed for making no progress within"
            " ASSETSYNC_RUN_STALL_AFTER (also counted in assetsync_bulk_runs_total).",
            registry=r,
        )
        self.build = Gauge(
            "assetsync_build_info", "The running version (always 1).", ["version"], registry=r
        )
        self.build.labels(_version()).set(1)

    def jira_observer(self) -> Callable[[str, str, float], None]:
        """What the Jira client calls after each request: (path, status, seconds)."""

        def observe(endpoint: str, status: str, seconds: float) -> None:
            self.jira_requests.labels(endpoint, status).inc()
            self.jira_seconds.labels(endpoint).observe(seconds)

        return observe

    def watch(self, collector: Collector) -> None:
        self.registry.register(collector)


class StoreCollector(Collector):
    """Read at scrape time: the database pool, and the bulk run in progress.

    :param pool_stats: the pool's counters (``Store.pool_stats``).
    :param run_progress: the newest unfinished run's state and counts, or None.
    """

    def __init__(
        self,
        *,
        pool_stats: Callable[[], dict[str, int]],
        run_progress: Callable[[], dict[str, Any] | None],
    ) -> None:
        self._pool_stats = pool_stats
        self._run_progress = run_progress

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._pool_stats()
        pool = GaugeMetricFamily(
            "assetsync_db_pool_connections",
            "Asset store connections, by state (in_use, idle, waiting: requests queued).",
            labels=["state"],
        )
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        pool.add_metric(["in_use"], size - idle)
        pool.add_metric(["idle"], idle)
        pool.add_metric(["waiting"], stats.get("requests_waiting", 0))
        yield pool
        run = GaugeMetricFamily(
            "assetsync_bulk_run_users",
            "Users of the bulk run in progress (the newest unfinished one), by count"
            " (matched, done, failed); absent when no run is in progress.",
            labels=["count"],
        )
        try:
            progress = self._run_progress()
        except Exception:  # a scrape must not fail because the database is away
            progress = None
        idle_for = GaugeMetricFamily(
            "assetsync_bulk_run_idle_seconds",
            "Seconds since the bulk run in progress last made progress, as the run watch"
            " saw it; it ends failed past ASSETSYNC_RUN_STALL_AFTER. Absent when no run is"
            " in progress.",
        )
        if progress is not None:
            for count in ("matched", "done", "failed"):
                run.add_metric([count], float(progress[count]))
            idle_for.add_metric([], float(progress["idle_s"]))
        yield run
        yield idle_for


class Timer:
    """``with Timer(histogram, gauge): ...`` observes the block's duration and counts it
    in progress meanwhile."""

    def __init__(self, histogram: Any, gauge: Any, weight: int = 1) -> None:
        self._histogram, self._gauge, self._weight = histogram, gauge, weight

    def __enter__(self) -> Timer:
        self._started = time.monotonic()
        self._gauge.inc(self._weight)
        return self

    def __exit__(self, *exc: object) -> None:
        self._gauge.dec(self._weight)
        self._histogram.observe(time.monotonic() - self._started)


def _version() -> str:
    try:
        return version("assetsync")
    except PackageNotFoundError:
        return "unknown"
