"""One set of servers for the browser tests of a module (a database, a broker prefix, the
demo Jira with its administrators, a worker and the console), and one Chromium for the
session: each test gets a fresh browser context (no cookies) on them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from demo.fake_jira import FakeJira
from lab.harness import Broker, WorkerProcess, worker_env
from lab.servers import Servers
from schemas.topology import Topology
from tests.console_support import CHROMIUM_FLAGS, ConsoleProcess, chromium, console_role
from tests.seclog_support import SecurityLogProcess, append, failed
from worker.store.migrate import migrate

HOSTILE = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery staple"
UNREACHABLE = "http://127.0.0.1:9"  # a security-log source that does not answer (discard port)


@dataclass
class Stack:
    database: str
    broker: Broker
    jira: FakeJira
    worker: WorkerProcess
    console: ConsoleProcess
    security_log: Path  # the log the stack's security-log source follows
    security_log_url: str  # its status endpoint, which the Health page shows

    @property
    def url(self) -> str:
        return self.console.url


@pytest.fixture(scope="module")
def stack(infra: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("console")
    name = f"assetsync_test_{uuid.uuid4().hex[:12]}"
    database = psycopg.conninfo.make_conninfo(infra.database_url, dbname=name)
    migrate(database)
    topology = Topology(prefix=f"assetsync-test-{uuid.uuid4().hex[:10]}", retry_delays=(0.2, 0.5))
    broker = Broker(url=infra.amqp_url, topology=topology)
    jira = FakeJira(flavor="datacenter")
    jira.add_sample_users(40, groups={"jira-software-users": 2})
    jira.accounts.add("ann", PASSWORD, administrator=True, display_name="Ann Admin")
    jira.accounts.add("bob", PASSWORD, administrator=False, display_name="Bob Builder")
    jira.accounts.add("mallory", PASSWORD, administrator=True, display_name=HOSTILE)
    jira.start()
    env = worker_env(
        amqp_url=infra.amqp_url, database_url=database, topology=topology, jira_url=jira.url
    )
    worker = WorkerProcess(env=env, log_path=logs / "worker.log").start()
    # A security-log source with its status endpoint, fed only lines that publish nothing
    # (a login would sync an asset under the other tests' feet).
    security_log = logs / "atlassian-jira-security.log"
    append(security_log, failed("nobody"))
    source = SecurityLogProcess(
        amqp_url=infra.amqp_url,
        topology=topology,
        log_path=logs / "security-log.log",
        args=(str(security_log), "--from-start"),
        env={"ASSETSYNC_SECURITY_LOG_LISTEN": "127.0.0.1:0"},
    )
    source.log_path.write_text("")
    try:
        source.start()
        # The console as deployed: a login role in assetsync_console, only its grants.
        with console_role(infra.database_url, database) as console_url:
            console = ConsoleProcess(
                env={
                    **env,
                    "ASSETSYNC_DATABASE_URL": console_url,
                    "ASSETSYNC_CONSOLE_SECURITY_LOG_URLS": f"{source.status_url()},{UNREACHABLE}",
                },
                log_path=logs / "console.log",
            ).start()
            try:
                yield Stack(
                    database, broker, jira, worker, console, security_log, source.status_url()
                )
            finally:
                console.terminate()
            assert "permission denied" not in console.log()
    finally:
        if source.proc is not None:
            source.stop()
        worker.kill()
        jira.stop()
        broker.delete_all()
        with psycopg.connect(infra.database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield found
        found.close()


@pytest.fixture
def page(browser, stack):  # a fresh context: no cookies, its own dialogs
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    found = context.new_page()
    found.set_default_timeout(15_000)
    found.dialogs = []
    found.on("dialog", lambda d: (found.dialogs.append(d.message), d.dismiss()))
    yield found
    context.close()


def screenshot(page, name: str) -> None:
    """Write a screenshot for the docs (docs/console-*.png) when ASSETSYNC_SCREENSHOTS names a folder."""
    folder = os.environ.get("ASSETSYNC_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(page, user: str = "ann", password: str = PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Jira username").fill(user)
    page.get_by_label("Password or personal access token").fill(password)
    page.get_by_role("button", name="Sign in").click()
