"""The Synchronize users page in a real browser (Debian's Chromium, driven by Playwright),
against a real console, worker, RabbitMQ and PostgreSQL, and the demo Jira. Controls are
found by their accessible names: those are the page's contract."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import psycopg
from playwright.sync_api import expect

from lab.harness import asset_of, user_assets, wait_for
from producers.publisher import Publisher, publish_user_logged_in
from tests.browser.conftest import HOSTILE, UNREACHABLE, screenshot, sign_in
from worker.store.sync_settings import load_settings


def settings_version(stack) -> int:
    with psycopg.connect(stack.database) as conn:
        return load_settings(conn).version


def login(stack, username: str) -> None:
    with Publisher(url=stack.broker.url, topology=stack.broker.topology) as publisher:
        publish_user_logged_in(publisher, username=username)


def counts(page, name: str):
    """The row of the run's counts table headed ``name``."""
    return page.get_by_role("table", name="Counts").get_by_role("row", name=name)


def test_an_administrator_signs_in_to_the_synchronize_users_page(page, stack):
    sign_in(page, "ann")
    expect(page.get_by_role("heading", level=1)).to_have_text("Synchronize users")
    expect(page.get_by_text("Signed in as Ann Admin (ann)")).to_be_visible()
    for label in ("Synchronize on login", "Alphabetical subfolders", "Dry run"):
        expect(page.get_by_role("checkbox", name=label)).to_be_visible()
    expect(page.get_by_role("combobox", name="Asset type")).to_have_value("Employee")
    expect(page.get_by_role("textbox", name="Folder")).to_have_value("Employees")
    expect(page.get_by_role("combobox", name="Full name")).to_have_value("displayName")
    expect(page.get_by_role("combobox", name="Username")).to_have_value("name")
    # The user field is shown, not editable.
    expect(page.get_by_role("row", name="User the Jira user itself")).to_be_visible()
    expect(page.get_by_role("combobox", name="User", exact=True)).to_have_count(0)
    for label in ("Username prefix", "Groups", "Missing limit"):
        expect(page.get_by_role("textbox", name=label)).to_be_visible()
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()
    expect(page.get_by_role("button", name="Start synchronization")).to_be_visible()
    screenshot(page, "console-settings")


def test_a_non_administrator_is_refused_with_one_sentence(page, stack):
    sign_in(page, "bob")
    expect(page.get_by_role("alert")).to_have_text(
        "Bob Builder (bob) is not a Jira administrator: only Jira administrators may use"
        " this console."
    )
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    page.goto("/runs")  # nor any other page
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_refused_and_then_jiras_captcha_is_explained(page, stack):
    stack.jira.accounts.add("carol", "right", administrator=True)
    for _ in range(3):
        sign_in(page, "carol", "wrong")
        expect(page.get_by_role("alert")).to_have_text(
            "Jira did not accept that username and password (or token)."
        )
    sign_in(page, "carol", "right")  # Jira no longer checks the password
    expect(page.get_by_role("alert")).to_contain_text("sign in to Jira once in a browser")
    stack.jira.accounts.clear_captcha("carol")
    sign_in(page, "carol", "right")
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()


def test_field_map_and_folder_changes_are_followed_by_a_prefix_run(page, stack):
    prefix = "a"
    expected = {u["key"] for u in stack.jira.users() if u["name"].lower().startswith(prefix)}
    assert len(expected) >= 3
    sign_in(page, "ann")
    page.get_by_role("textbox", name="Folder").fill("People/Staff")
    page.get_by_role("checkbox", name="Alphabetical subfolders").uncheck()
    page.get_by_role("combobox", name="E-mail").select_option("Not synchronized")
    page.get_by_role("combobox", name="Full name").select_option("emailAddress")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved (version 1)")
    expect(page.get_by_role("cell", name="setting changed: folder")).to_be_visible()

    # Jira's pages come slowly, so that the page is seen before the run ends.
    stack.jira.set_delay(1.0, path_contains="/user/list")
    try:
        page.get_by_role("textbox", name="Username prefix").fill(prefix)
        page.get_by_role("button", name="Start synchronization").click()
        bar = page.get_by_role("progressbar")
        expect(bar).to_be_visible()
        loaded_url = page.url
        assert page.locator("[data-field=state]").inner_text() != "done"
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        expect(page.locator("[data-field=state]")).to_have_text("done", timeout=60_000)
    finally:
        stack.jira.set_delay(0.0, path_contains="/user/list")
    expect(bar).to_have_attribute("aria-valuemax", str(len(expected)))
    expect(bar).to_have_attribute("aria-valuenow", str(len(expected)))
    assert navigations == [] and page.url == loaded_url  # it moved without a reload
    expect(counts(page, "matched")).to_contain_text(str(len(expected)))
    expect(counts(page, "created")).to_contain_text(str(len(expected)))
    expect(counts(page, "failed")).to_contain_text("0")

    assets = [a for a in user_assets(stack.database) if a["jira_id"] in expected]
    assert {a["jira_id"] for a in assets} == expected
    assert {a["folder_path"] for a in assets} == {"People/Staff"}
    for asset in assets:
        user = next(u for u in stack.jira.users() if u["key"] == asset["jira_id"])
        assert "E-mail" not in asset["fields"]
        assert asset["fields"]["Full name"] == user.get("emailAddress")

    page.reload()  # the runs table lists the run, which opens its own page
    screenshot(page, "console-run")
    run_id = page.url.split("run=")[1].split("#")[0]
    page.get_by_role("table", name="Runs, newest first").get_by_role(
        "link", name=run_id[:8]
    ).click()
    expect(page).to_have_url(f"{stack.url}/runs/{run_id}")
    expect(page.get_by_role("heading", name="Failed users")).to_be_visible()
    expect(counts(page, "matched")).to_contain_text(str(len(expected)))
    screenshot(page, "console-run-page")


def test_a_field_map_without_username_is_refused_naming_username(page, stack):
    sign_in(page, "ann")
    before = settings_version(stack)
    page.get_by_role("combobox", name="Username").select_option("Not synchronized")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text(
        "Not saved: Username is mandatory: choose the asset field that Jira's name (the"
        " username) goes into"
    )
    # A text field into a boolean one is refused the same way.
    page.get_by_role("combobox", name="Username").select_option("name")
    page.get_by_role("combobox", name="Active").select_option("displayName")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text(
        "Not saved: Active: displayName is text and cannot go into a field of type boolean"
    )
    assert settings_version(stack) == before


def test_an_unknown_group_is_refused_naming_it(page, stack):
    sign_in(page, "ann")
    page.get_by_role("textbox", name="Groups").fill("jira-software-users, no-such-group")
    page.get_by_role("button", name="Start synchronization").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Jira has no group 'no-such-group'; nothing was started"
    )
    assert stack.broker.count(stack.broker.topology.bulk_queue) == 0


def test_sync_on_login_off_then_on(page, stack):
    user = next(u for u in stack.jira.users() if asset_of(stack.database, u["key"]) is None)
    sign_in(page, "ann")
    page.get_by_role("checkbox", name="Synchronize on login").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    login(stack, user["name"])
    wait_for(
        lambda: f"sync on login is off: not syncing username {user['name']!r}" in stack.worker.log()
    )
    assert asset_of(stack.database, user["key"]) is None

    page.get_by_role("checkbox", name="Synchronize on login").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    login(stack, user["name"])
    wait_for(lambda: asset_of(stack.database, user["key"]), what="the login's asset")


def test_a_cross_site_form_post_is_refused(page, stack):
    sign_in(page, "ann")
    before = settings_version(stack)
    # Another site's page (another origin) posting a form to the console, with the
    # administrator's cookie in the browser.
    evil = (
        f'<form method="post" action="{stack.url}/settings">'
        '<input name="sync_on_login" value=""><input name="folder" value="Pwned">'
        '<button type="submit">Win a prize</button></form>'
    ).encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        with page.expect_response(f"{stack.url}/settings") as answer:
            page.get_by_role("button", name="Win a prize").click()
        assert answer.value.status == 403
        expect(page.get_by_role("alert")).to_contain_text("is refused")
    finally:
        server.shutdown()
        server.server_close()
    assert settings_version(stack) == before
    assert "refused POST /settings" in stack.console.log()


def test_a_hostile_display_name_renders_as_text(page, stack):
    sign_in(page, "mallory")
    expect(page.get_by_text(f"Signed in as {HOSTILE} (mallory)")).to_be_visible()
    page.get_by_role("button", name="Start synchronization").click()  # an audit entry by mallory
    expect(page.get_by_role("progressbar")).to_be_visible()
    assert page.locator("img").count() == 0
    assert page.dialogs == []
    assert HOSTILE.replace("<", "&lt;").replace(">", "&gt;") in page.content()


def test_a_dry_run_previews_what_it_would_do_user_by_user(page, stack):
    hostile = stack.jira.add_user("zz.hostile", display_name=HOSTILE, email="zz@example.com")
    plain = stack.jira.add_user("zz.plain", display_name="Zed Plain")
    sign_in(page, "ann")
    page.get_by_role("textbox", name="Username prefix").fill("zz.")
    page.get_by_role("checkbox", name="Dry run").check()
    page.get_by_role("button", name="Start synchronization").click()
    expect(page.locator("[data-field=state]")).to_have_text("done", timeout=60_000)
    expect(counts(page, "created")).to_contain_text("2")
    assert asset_of(stack.database, hostile["key"]) is None  # a dry run writes nothing

    page.reload()
    run_id = page.url.split("run=")[1].split("#")[0]
    page.goto(f"/runs/{run_id}")
    page.get_by_role("link", name="See what it would do, user by user").click()
    table = page.get_by_role("table", name="Users, by Jira identity")
    expect(
        table.get_by_role("row", name=f"create {hostile['key']} zz.hostile {HOSTILE}")
    ).to_be_visible()
    expect(
        table.get_by_role("row", name=f"create {plain['key']} zz.plain Zed Plain")
    ).to_be_visible()
    expect(table).to_contain_text("Username: → zz.hostile")
    assert page.locator("img").count() == 0 and page.dialogs == []
    screenshot(page, "console-preview")

    page.get_by_role("textbox", name="Name contains").fill("plain")
    page.get_by_role("button", name="Filter").click()
    expect(table.get_by_role("row")).to_have_count(2)  # the header and zz.plain
    page.get_by_role("combobox", name="Show").select_option("update")
    page.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("Nobody matches.")
    page.get_by_role("combobox", name="Show").select_option("create")
    page.get_by_role("textbox", name="Name contains").fill("")
    page.get_by_role("button", name="Filter").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download (CSV)").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "would,jira_id,username,display_name,changes"
    assert {line.split(",")[2] for line in lines[1:]} == {"zz.hostile", "zz.plain"}


def test_dead_letters_are_listed_with_reasons_and_replayed_or_deleted(page, stack):
    dead = stack.broker.topology.dead_queue
    login(stack, "latecomer")  # not in Jira (yet): dead-lettered with the reason
    login(stack, "nobody.ever")
    wait_for(lambda: stack.broker.count(dead) == 2, what="two dead letters")
    late = stack.jira.add_user("latecomer", display_name="Late Comer")

    sign_in(page, "ann")
    page.get_by_role("link", name="Dead letters").click()
    page.get_by_role("button", name="Show dead letters").click()
    table = page.get_by_role("table", name="2 of 2 dead letters")
    row = table.get_by_role("row", name="Jira has no user with username 'latecomer'")
    expect(row).to_be_visible()
    screenshot(page, "console-dead-letters")
    row.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("heading", name="Replay dead letter")).to_be_visible()
    page.get_by_role("button", name="Yes, replay it").click()
    expect(page.get_by_role("status")).to_contain_text("replayed")
    wait_for(lambda: asset_of(stack.database, late["key"]), what="the replayed login's asset")

    row = page.get_by_role("row", name="Jira has no user with username 'nobody.ever'")
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    expect(page.get_by_role("table", name="0 of 0 dead letters")).to_be_visible()
    assert stack.broker.count(dead) == 0
    page.goto("/")
    expect(page.get_by_role("cell", name="dead letter deleted:")).to_be_visible()  # audited


def test_health_shows_the_workers_and_queue_depths(page, stack):
    sign_in(page, "ann")
    page.get_by_role("link", name="Health").click()
    expect(page.get_by_text("Workers seen: 1")).to_be_visible()
    queues = page.get_by_role("table", name="Work queues")
    expect(queues.get_by_role("row", name=stack.broker.topology.login_queue)).to_contain_text("1")
    expect(page.get_by_text("Asset store: up")).to_be_visible()


def test_health_shows_each_security_log_sources_position_or_that_it_cannot_be_reached(page, stack):
    sign_in(page, "ann")
    page.get_by_role("link", name="Health").click()
    sources = page.get_by_role("table", name="Security-log sources")
    row = sources.get_by_role("row", name=stack.security_log_url)
    log = stack.security_log.stat()
    expect(row.get_by_role("cell", name=str(stack.security_log), exact=True)).to_be_visible()
    expect(row).to_contain_text(f"byte {log.st_size} of inode {log.st_ino}")
    expect(row).to_contain_text("1 (0 logins published)")
    expect(row).to_contain_text("caught up")
    unreachable = sources.get_by_role("row", name=UNREACHABLE)
    expect(unreachable).to_contain_text("cannot be reached")
    expect(page.get_by_role("alert")).to_contain_text(
        f"the security-log source at {UNREACHABLE} does not answer"
    )


def test_marking_missing_users_is_approved_and_followed_on_the_runs_page(page, stack):
    # Last in the module: it removes users from the demo Jira.
    sign_in(page, "ann")
    page.get_by_role("button", name="Start synchronization").click()  # every user has an asset
    expect(page.locator("[data-field=state]")).to_have_text("done", timeout=60_000)
    leaving = sorted(stack.jira.users(), key=lambda u: u["key"])[-5:]
    for user in leaving:
        stack.jira.remove_user(user["key"])
    page.get_by_role("button", name="Start synchronization").click()
    expect(page.locator("[data-field=state]")).to_have_text("failed", timeout=60_000)
    expect(page.get_by_role("alert")).to_contain_text("more than ASSETSYNC_MISSING_LIMIT")
    run_id = page.url.split("run=")[1].split("#")[0]
    page.goto(f"/runs/{run_id}")
    page.get_by_role("button", name="Mark them missing").click()
    expect(page.get_by_role("heading", name="Mark 5 assets missing?")).to_be_visible()
    stack.jira.set_delay(0.3, path_contains="/user?key=")  # slow enough to be seen going
    try:
        page.get_by_role("button", name="Yes, mark 5 assets missing").click()
        expect(page).to_have_url(f"{stack.url}/runs/{run_id}#approval-heading")
        bar = page.get_by_role("progressbar", name="Marking missing approved by ann")
        expect(bar).to_have_attribute("aria-valuemax", "5")
        screenshot(page, "console-approval")
        expect(page.get_by_role("status")).to_have_text(
            "Done: 5 marked missing, 0 came back, 0 failed.", timeout=30_000
        )
    finally:
        stack.jira.set_delay(0, path_contains="/user?key=")
    expect(bar).to_have_attribute("aria-valuenow", "5")
    missing = page.get_by_role("table", name="Assets whose user Jira confirmed gone")
    for user in leaving:
        expect(missing.get_by_role("row", name=user["key"])).to_contain_text("yes")
        assert asset_of(stack.database, user["key"])["state"] == "missing"
    expect(page.get_by_role("button", name="Mark them missing")).to_have_count(0)
