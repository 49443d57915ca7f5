"""A worker replica, composed from the settings: its services, its three consuming
loops, and the probes that watch them.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

from worker.approvals import Approvals
from worker.consumer import Consumer, Route
from worker.errors import ConfigError, TransientError
from worker.fan_out import FanOut
from worker.given_up import GivenUp, why_given_up
from worker.jira import JiraClient
from worker.login import LoginSync
from worker.metrics import Metrics, StoreCollector
from worker.probes import Health, serve
from worker.run_watch import RunWatch
from worker.settings import Settings
from worker.signing import KeyRing, Signer
from worker.store import Folders, Store, views
from worker.store.keys import load_ring
from worker.sync_config import LiveSync
from worker.user_sync import UserSyncBatch

log = logging.getLogger("worker")

T = TypeVar("T")
STARTUP_DELAYS = (1, 2, 4, 8, 15, 30)


@dataclass(frozen=True)
class Services:
    """What the replica's three loops call: one service per queue."""

    login: LoginSync
    user_sync: UserSyncBatch
    fan_out: FanOut


def run(settings: Settings, *, check_only: bool = False) -> int:
    """Start a replica (``check_only``: check the settings against the asset store and
    Jira, then stop). Returns the exit code."""
    if not settings.jira_url:
        raise ConfigError("ASSETSYNC_JIRA_URL is not set: which Jira should be read?")
    metrics, health = Metrics(), Health(stall_after=settings.stall_seconds)
    store = Store(url=settings.database_url.get_secret_value(), deadline=settings.database_timeout)
    stop_probes: Callable[[], None] | None = None
    if settings.metrics_port and not check_only:
        # Up before the dependencies are: a replica waiting for them is alive, not ready.
        stop_probes = serve(
            port=settings.metrics_port,
            registry=metrics.registry,
            health=health,
            database=store.ping,
        )
    jira = JiraClient.from_settings(settings, observe=metrics.jira_observer())
    try:
        health.beat("startup")
        with_retries("asset store", store.open, on_wait=lambda: health.beat("startup"))
        with store.transaction() as conn:
            signer = (
                Signer.fixed(settings.signing_key.get_secret_value().encode())
                if settings.signing_key
                else Signer(
                    load_ring(conn),
                    reload=functools.partial(_read_keys, store),
                    refresh=settings.signing_key_refresh,
                )
            )
            sync = LiveSync(store=store, env=settings)
            sync.start(conn)
        log.info(
            "connected to %s",
            with_retries("Jira", jira.check, on_wait=lambda: health.beat("startup")),
        )
        if check_only:
            print("configuration OK")
            return 0
        health.forget("startup")
        health.checked = True
        metrics.watch(StoreCollector(pool_stats=store.pool_stats, run_progress=_progress(store)))
        folders = Folders(store)
        services = Services(
            login=LoginSync(
                jira=jira, store=store, folders=folders, sync_settings=sync, metrics=metrics
            ),
            user_sync=UserSyncBatch(
                jira=jira, store=store, folders=folders, sync_settings=sync, metrics=metrics
            ),
            fan_out=FanOut(
                jira=jira,
                store=store,
                sync_settings=sync,
                exchange=settings.topology.exchange,
                queue=settings.topology.user_sync_queue,
                ahead=settings.bulk_queue_ahead,
                page_size=settings.jira_page_size,
                patience=settings.retry_delays,
                signer=signer,
                metrics=metrics,
                retention_days=settings.run_retention_days,
            ),
        )
        approvals = Approvals(
            store=store,
            jira=jira,
            sync_settings=sync,
            replica=replica_name(),
            lease=settings.approval_lease,
        )
        watch = RunWatch(store=store, metrics=metrics, stall_after=settings.run_stall_after)
        return consume(
            settings,
            services,
            metrics=metrics,
            health=health,
            sync=sync,
            store_ready=store.takes_writes,
            duties=[approvals.follow, watch.follow],
        )
    finally:
        if stop_probes is not None:
            stop_probes()
        jira.close()
        store.close()


def consume(
    settings: Settings,
    services: Services,
    *,
    metrics: Metrics,
    health: Health,
    sync: LiveSync,
    store_ready: Callable[[], bool] | None = None,
    duties: Sequence[Callable[[threading.Event], None]] = (),
) -> int:
    """Run the replica's three consuming loops until SIGTERM/SIGINT or a fatal error.
    With ``store_ready`` (whether the asset store takes writes), each loop waits out an
    outage of the store instead of spending the messages' retries on it. Each of
    ``duties`` runs in a thread of its own until the stop event is set (background work
    found in the store: approvals given on the console).

    Logins, per-user bulk messages and bulk requests each get a loop (and connection) of
    their own: a login is handled as soon as it arrives, not after the batch of bulk
    upserts in hand, and a long Jira scan holds up neither.
    """
    topology, stop = settings.topology, threading.Event()
    # The loops share one GIL; a thread whose socket write returns waits up to the switch
    # interval for it while another thread computes. A fan-out writes per message, so the
    # default 5 ms would throttle it to a crawl whenever a batch is being mapped.
    sys.setswitchinterval(0.0005)
    loop = functools.partial(
        Consumer,
        url=settings.amqp_url.get_secret_value(),
        topology=topology,
        max_message_bytes=settings.max_message_bytes,
        heartbeat=settings.heartbeat,
        stop=stop,
        metrics=metrics,
        health=health,
        store_ready=store_ready,
    )
    bulk_users = Route(
        topology.user_sync_queue,
        2 * settings.batch_size,
        services.user_sync.handle,
        batch_size=settings.batch_size,
        on_give_up=services.user_sync.failed,
        check=services.fan_out.signer.check,
    )
    given_up = Route(
        topology.given_up_queue,
        2 * settings.batch_size,
        services.user_sync.given_up,
        batch_size=settings.batch_size,
        check=services.fan_out.signer.check,  # unsigned: nobody's business of a run
        annotate=lambda body, headers: GivenUp(
            body, why_given_up(headers, work_queue=topology.user_sync_queue)
        ),
        copies=True,
    )
    main_loop = loop(
        routes=[bulk_users, given_up], health_file=settings.health_file, name="user-sync"
    )
    side_loops = {
        "login": loop(
            routes=[Route(topology.login_queue, settings.login_prefetch, services.login.handle)],
            name="login",
        ),
        "bulk": loop(
            routes=[
                Route(
                    topology.bulk_queue,
                    1,
                    services.fan_out.handle,
                    on_give_up=services.fan_out.failed,
                )
            ],
            name="bulk",
        ),
    }
    failures: list[BaseException] = []

    def run_side(consumer: Consumer) -> None:
        try:
            consumer.run()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            stop.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: finishing the messages in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=run_side, args=(c,), name=name, daemon=True)
        for name, c in side_loops.items()
    ]
    for thread in threads:
        thread.start()
    threading.Thread(target=sync.follow, args=(stop,), name="settings", daemon=True).start()
    background = [
        threading.Thread(target=duty, args=(stop,), name=f"duty-{n}", daemon=True)
        for n, duty in enumerate(duties)
    ]
    for thread in background:
        thread.start()
    try:
        main_loop.run()
    finally:
        stop.set()
        # A fan-out stops at its next page; one stuck in a Jira call is abandoned (its
        # request goes back to the queue and resumes from the last checkpoint).
        deadline = time.monotonic() + 6
        for thread in (*threads, *background):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    if failures:
        raise failures[0]
    handled = main_loop.handled + sum(c.handled for c in side_loops.values())
    log.info("stopped after %d messages", handled)
    return 0


def replica_name() -> str:
    """This replica's name in the asset store (its claims, its heartbeat): the host (a
    pod's name) and the process, so that two replicas on one machine differ too."""
    return f"{socket.gethostname()}:{os.getpid()}"


def with_retries(what: str, call: Callable[[], T], *, on_wait: Callable[[], None]) -> T:
    """Call ``call`` until it stops failing transiently; a dependency that is still
    starting (in Compose, say) is waited for, not crashed on."""
    for delay in (*STARTUP_DELAYS, None):
        on_wait()
        try:
            return call()
        except TransientError as exc:
            if delay is None:
                raise
            log.warning("%s not reachable yet (%s); retrying in %ss", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _read_keys(store: Store) -> KeyRing:
    with store.connection() as conn:
        return load_ring(conn)


def _progress(store: Store) -> Callable[[], dict[str, object] | None]:
    def read() -> dict[str, object] | None:
        with store.connection() as conn:
            return views.progress(conn)

    return read
