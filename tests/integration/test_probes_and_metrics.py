"""The worker's HTTP side, scraped after real traffic: the metrics move as they must,
``/healthz`` is about the loops only (a stuck one fails it), ``/readyz`` about the
broker and the database."""

from __future__ import annotations

import socket
import time

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.harness import asset_of, login_body, request_bulk, wait_for, wait_run_finished
from lab.proxy import Proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def port() -> int:
    return free_port()


def test_metrics_count_what_happened(start_worker, broker, jira, database, port):
    jira.add_sample_users(30)
    jdoe, flaky = jira.add_user("jdoe"), jira.add_user("flaky")
    start_worker(env={"ASSETSYNC_METRICS_PORT": str(port)})
    jira.fail_next(1, status=503, path_contains="username=flaky")
    for name in ("jdoe", "nobody", "flaky"):
        broker.publish_raw(login_body(username=name), routing_key="user-logged-in")
    wait_for(lambda: asset_of(database, jdoe["key"]) and asset_of(database, flaky["key"]))
    wait_for(broker.dead_letters, what="the unknown user's dead letter")
    run = wait_run_finished(database, request_bulk(broker))
    assert run["state"] == "done"

    m = scrape(port)
    assert (
        value(m, "assetsync_messages_total", queue=broker.topology.login_queue, outcome="synced")
        == 2
    )
    assert (
        value(m, "assetsync_messages_total", queue=broker.topology.login_queue, outcome="retried")
        == 1
    )
    assert (
        value(
            m,
            "assetsync_messages_total",
            queue=broker.topology.login_queue,
            outcome="dead_lettered",
        )
        == 1
    )
    assert (
        value(m, "assetsync_retries_total", queue=broker.topology.login_queue, delay_seconds="0.2")
        == 1
    )
    users = broker.topology.user_sync_queue
    assert value(m, "assetsync_messages_total", queue=users, outcome="synced") == 32
    assert value(m, "assetsync_assets_total", source="login", outcome="created") == 2
    assert value(m, "assetsync_assets_total", source="bulk", outcome="created") == 30
    assert value(m, "assetsync_assets_total", source="bulk", outcome="unchanged") == 2
    assert value(m, "assetsync_login_latency_seconds_count") == 2
    user = "/rest/api/2/user"
    assert value(m, "assetsync_jira_requests_total", endpoint=user, status="200") == 2
    assert value(m, "assetsync_jira_requests_total", endpoint=user, status="503") == 1
    assert value(m, "assetsync_jira_requests_total", endpoint=user, status="404") == 1
    assert value(m, "assetsync_jira_request_seconds_count", endpoint=user) == 4
    assert value(m, "assetsync_bulk_runs_total", state="done") == 1
    assert value(m, "assetsync_message_processing_seconds_count", queue=users) >= 1
    assert value(m, "assetsync_messages_in_progress", queue=users) == 0
    assert value(m, "assetsync_db_pool_connections", state="waiting") == 0
    assert value(m, "assetsync_db_pool_connections", state="in_use") >= 0
    assert any(name == "assetsync_build_info" for name, _ in m)


def test_a_run_in_progress_shows_its_counts(start_worker, broker, jira, database, port):
    jira.add_sample_users(400)
    jira.set_delay(0.05, path_contains="/user/list")
    start_worker(env={"ASSETSYNC_METRICS_PORT": str(port), "ASSETSYNC_JIRA_PAGE_SIZE": "20"})
    run_id = request_bulk(broker)
    seen = wait_for(
        lambda: value(scrape(port), "assetsync_bulk_run_users", count="matched") >= 40,
        what="the run's counts in the metrics",
    )
    assert seen
    wait_run_finished(database, run_id)
    assert value(scrape(port), "assetsync_bulk_run_users", count="matched") == 0  # gone


def test_healthz_fails_for_a_stuck_loop_and_recovers(start_worker, broker, jira, port):
    jira.add_user("slow")
    start_worker(
        env={
            "ASSETSYNC_METRICS_PORT": str(port),
            "ASSETSYNC_STALL_SECONDS": "2",
            "ASSETSYNC_JIRA_TIMEOUT": "20",
        }
    )
    live = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert live.status_code == 200
    assert "login: ok" in live.text
    jira.set_delay(6, path_contains="username=slow")  # one login holds its loop 6 s
    broker.publish_raw(login_body(username="slow"), routing_key="user-logged-in")

    stuck = wait_for(
        lambda: (r := httpx.get(f"http://127.0.0.1:{port}/healthz")).status_code == 503 and r,
        what="the stuck loop to show",
    )
    assert "login: stuck" in stuck.text
    assert "user-sync: ok" in stuck.text
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
        timeout=20,
        what="the loop to come back",
    )


def test_readyz_follows_the_database_and_healthz_does_not(
    start_worker, broker, jira, database, port
):
    params = psycopg.conninfo.conninfo_to_dict(database)
    with Proxy((str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))) as db:
        url = psycopg.conninfo.make_conninfo(database, host="127.0.0.1", port=str(db.port))
        start_worker(env={"ASSETSYNC_METRICS_PORT": str(port), "ASSETSYNC_DATABASE_URL": url})
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz").status_code == 200

        db.refuse()
        down = wait_for(
            lambda: (r := httpx.get(f"{base}/readyz", timeout=10)).status_code == 503 and r,
            what="not ready",
        )
        assert "database: down" in down.text
        assert "broker (login): ok" in down.text
        assert httpx.get(f"{base}/healthz").status_code == 200  # a restart would not help

        db.restore()
        wait_for(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, what="ready")


def test_a_replica_waiting_for_its_database_is_alive_and_not_ready(start_worker, port):
    unused = free_port()
    worker = start_worker(
        env={
            "ASSETSYNC_METRICS_PORT": str(port),
            "ASSETSYNC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{unused}/nowhere",
            "ASSETSYNC_DATABASE_TIMEOUT": "1",
        },
        wait=False,
    )
    wait_for(lambda: "not reachable yet" in worker.log(), what="the worker waiting")
    time.sleep(0.5)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
    assert ready.status_code == 503
    assert "settings: down" in ready.text
