"""``python -m console`` over plain HTTP: it answers /healthz, its cookie and headers
are what a browser needs to keep a session safe, a post without the session's CSRF
token or from another origin changes nothing, and SIGTERM stops it cleanly."""

from __future__ import annotations

import contextlib
import re

import httpx
import pytest

from lab.harness import wait_for, worker_env
from tests.console_support import ConsoleProcess, csrf, signed_in

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
def console(infra, database, broker, jira, tmp_path):
    jira.accounts.add("ann", "pw", administrator=True, display_name="Ann Admin")
    process = ConsoleProcess(
        env=worker_env(
            amqp_url=infra.amqp_url,
            database_url=database,
            topology=broker.topology,
            jira_url=jira.url,
        ),
        log_path=tmp_path / "console.log",
    ).start()
    yield process
    if process.proc.poll() is None:
        process.terminate()


def test_healthz_headers_and_the_session_cookie(console):
    with httpx.Client(base_url=console.url) as http:
        health = http.get("/healthz")
        assert (health.status_code, health.text) == (200, "console: ok\ndatabase: ok\n")
        page = http.get("/")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # bound to loopback; anywhere else it is Secure


def test_a_post_without_the_csrf_token_or_from_another_origin_is_refused(console):
    with httpx.Client(base_url=console.url) as http:
        token = csrf(http.get("/"))
        creds = {"username": "ann", "password": "pw"}
        assert http.post("/sign-in", data=creds).status_code == 403
        foreign = http.post(
            "/sign-in", data={**creds, "csrf": token}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        signed_in = http.post("/sign-in", data={**creds, "csrf": token})
        assert signed_in.status_code == 303
        page = http.get("/", headers={"Accept": "text/html"})
        assert "Signed in as <strong>Ann Admin</strong>" in page.text
        old_token = token
        assert http.post("/settings", data={"csrf": old_token, "folder": "X"}).status_code == 403
        assert http.post("/settings", data={"folder": "X"}).status_code == 403
    assert console.log().count("refused POST") == 4


def test_sigterm_stops_the_console_cleanly(console):
    assert console.terminate() == 0
    assert "console stopped" in console.log()


def test_a_runs_page_lists_its_failed_and_missing_users_with_csv(
    console, start_worker, broker, jira, database
):
    from lab.harness import request_bulk, wait_run_finished

    jira.add_sample_users(6)
    gone = jira.add_user("gone.soon", display_name="Gone Soon")
    start_worker(env={"ASSETSYNC_MISSING_LIMIT": "5"})
    wait_run_finished(database, request_bulk(broker))
    jira.remove_user(gone["key"])
    odd = jira.add_user("=odd.one", display_name="x" * 5000)  # Jira describes them badly
    run = wait_run_finished(database, request_bulk(broker))
    assert (run["failed"], run["missing"]) == (1, 1)

    with contextlib.closing(signed_in(console)) as http:
        page = http.get(f"/runs/{run['run_id']}")
        assert page.status_code == 200
        assert f"<td>{odd['key']}</td>" in page.text and "display_name" in page.text
        assert f"<td>{gone['key']}</td>" in page.text
        failed = http.get(f"/runs/{run['run_id']}/failed.csv")
        assert failed.headers["content-type"] == "text/csv; charset=utf-8"
        rows = failed.text.splitlines()
        assert rows[0] == "jira_id,reason" and rows[1].startswith(f"{odd['key']},")
        missing = http.get(f"/runs/{run['run_id']}/missing.csv").text.splitlines()
        assert missing[0] == "jira_id,asset_id,marked_missing,came_back,not_confirmed_because"
        assert missing[1].startswith(f"{gone['key']},") and missing[1].endswith(",True,False,")
        runs = http.get("/runs")
        assert runs.text.count('<a href="/runs/') == 2  # both runs, newest first
        assert runs.text.index(str(run["run_id"])[:8]) < runs.text.index("every user")


def test_a_setting_the_environment_gives_is_read_only_and_named(
    infra, database, broker, jira, tmp_path
):
    import psycopg

    from worker.store.sync_settings import load_settings

    jira.accounts.add("ann", "pw", administrator=True)
    env = worker_env(
        amqp_url=infra.amqp_url, database_url=database, topology=broker.topology, jira_url=jira.url
    )
    pinned = ConsoleProcess(
        env={**env, "ASSETSYNC_FOLDER": "Pinned"}, log_path=tmp_path / "pinned.log"
    ).start()
    try:
        with contextlib.closing(signed_in(pinned)) as http:
            page = http.get("/")
            assert re.search(r'<input id="folder" name="folder" value="Pinned" disabled', page.text)
            assert "Set by ASSETSYNC_FOLDER: change it there." in page.text
            form = {
                "csrf": csrf(page),
                "version": "0",
                "folder": "Forged",
                "asset_type": "Employee",
                "missing_users": "mark",
                "missing_limit": "5%",
                "map:Employee:Username": "name",
                "map:Employee:Active": "active",
            }
            assert http.post("/settings", data=form).status_code == 303
    finally:
        pinned.terminate()
    with psycopg.connect(database) as conn:
        stored = load_settings(conn)
    assert stored.version == 1 and "folder" not in stored.values  # the form cannot set it
    assert stored.values["field_map"] == {"name": "Username", "active": "Active"}


def test_health_shows_the_queues_and_the_last_webhook_delivery(
    infra, database, broker, jira, receiver, tmp_path
):
    from tests.webhook_support import dc_event

    jira.accounts.add("ann", "pw", administrator=True)
    env = worker_env(
        amqp_url=infra.amqp_url, database_url=database, topology=broker.topology, jira_url=jira.url
    )
    console = ConsoleProcess(
        env={**env, "ASSETSYNC_CONSOLE_WEBHOOKS_URL": receiver.base}, log_path=tmp_path / "c.log"
    ).start()
    try:
        with contextlib.closing(signed_in(console)) as http:
            assert "last delivery: <strong>none yet</strong>" in http.get("/health").text
            assert receiver.post(dc_event("user_updated")).status_code == 200
            page = http.get("/health").text
    finally:
        console.terminate()
    assert "1 deliveries published since it started" in page
    assert re.search(r"last delivery: <strong>\d{4}-\d\d-\d\dT", page)
    assert f"<td>{broker.topology.login_queue}</td>" in page
    assert "Workers seen: <strong>0</strong> — no worker consumes" in page


def test_health_shows_each_security_log_source_position_or_that_it_cannot_be_reached(
    infra, database, broker, jira, tmp_path
):
    from tests.seclog_support import SecurityLogProcess, append, passed

    broker.declare()
    seclog = tmp_path / "atlassian-jira-security.log"
    append(seclog, passed("alice"))
    source = SecurityLogProcess(
        amqp_url=broker.url,
        topology=broker.topology,
        log_path=tmp_path / "source.log",
        args=(str(seclog), "--from-start"),
        env={"ASSETSYNC_SECURITY_LOG_LISTEN": "127.0.0.1:0"},
    )
    source.log_path.write_text("")
    source.start()
    gone = "http://127.0.0.1:9"  # the discard port: nothing listens there
    jira.accounts.add("ann", "pw", administrator=True)
    env = worker_env(
        amqp_url=infra.amqp_url, database_url=database, topology=broker.topology, jira_url=jira.url
    )
    urls = f"{source.status_url()},{gone}"
    console = ConsoleProcess(
        env={**env, "ASSETSYNC_CONSOLE_SECURITY_LOG_URLS": urls}, log_path=tmp_path / "c.log"
    ).start()
    try:
        with contextlib.closing(signed_in(console)) as http:
            size = seclog.stat().st_size
            wait_for(
                lambda: f"byte {size} of inode" in http.get("/health").text,
                what="the source's position on the page",
            )
            page = http.get("/health").text
    finally:
        console.terminate()
        source.stop()
    row = re.search(
        rf"<th scope=\"row\">{re.escape(source.status_url())}</th>(.*?)</tr>", page, re.S
    )
    assert row, page
    cells = row.group(1)
    assert f"<td>{seclog}</td>" in cells
    assert f"byte {size} of inode {seclog.stat().st_ino}" in cells
    assert "1 (1 logins published)" in cells
    assert re.search(
        r"\d{4}-\d\d-\d\dT[\d:]+\+00:00 \(Jira logged it at 2026-11-29T09:00:00", cells
    )
    assert "caught up" in cells
    assert (
        f'<p role="alert" class="error">the security-log source at {gone} does not answer' in page
    )
    assert re.search(rf'<th scope="row">{gone}</th>\s*<td colspan="5">cannot be reached</td>', page)
