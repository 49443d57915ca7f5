"""``python -m demo.run``: the quick start without Docker.

Migrates the database, starts the demo Jira stand-in (unless ``ASSETSYNC_JIRA_URL``
names a real one), starts two worker replicas and the console (``python -m console``),
asks for a bulk sync of every Jira user and follows it, shows the synced user assets,
says how to sign in to the console, and keeps everything running (syncing logins) until
Ctrl-C. With the demo Jira it also starts the webhook receiver, registers it in the
stand-in with a secret, and has the stand-in rename a user every 20 s: each rename
reaches the asset through a signed webhook.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import psycopg

from demo.fake_jira import FakeJira
from demo.fake_webhooks import DirectoryChanges
from worker.settings import Settings
from worker.store.views import user_asset_rows

DEMO_USERS = 40
RENAME_EVERY = 20.0  # seconds between the stand-in's user changes
# Who may sign in to the demo Jira (and so to the console): login, administrator, name.
DEMO_PEOPLE = (("ann", True, "Ann Admin"), ("bob", False, "Bob Builder"))
DEMO_PASSWORD = "demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--once", action="store_true", help="stop once the demo sync is done")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    fake: FakeJira | None = None
    if not env.get("ASSETSYNC_JIRA_URL"):
        fake = FakeJira(flavor="datacenter", port=int(env.get("DEMO_JIRA_PORT", "0")))
        fake.add_sample_users(DEMO_USERS, inactive_every=10, groups={"jira-software-users": 1})
        for login, admin, name in DEMO_PEOPLE:
            fake.accounts.add(login, DEMO_PASSWORD, administrator=admin, display_name=name)
        fake.start()
        env.update(
            ASSETSYNC_JIRA_URL=fake.url,
            ASSETSYNC_JIRA_USERNAME="admin",
            ASSETSYNC_JIRA_TOKEN="secret",
        )
        print(f"demo Jira with {DEMO_USERS} sample users on {fake.url}")
    settings = Settings(jira_url=env["ASSETSYNC_JIRA_URL"])  # the rest from the environment

    subprocess.run([sys.executable, "-m", "worker", "migrate"], env=env, check=True)
    workers = [
        subprocess.Popen([sys.executable, "-m", "worker"], env=env) for _ in range(args.replicas)
    ]
    receiver = start_receiver(fake, env) if fake is not None else None
    console = subprocess.Popen([sys.executable, "-m", "console"], env=env)
    changes = DirectoryChanges(fake, every=RENAME_EVERY) if fake is not None else None
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        bulk = [sys.executable, "-m", "producers.bulk_sync", "--wait", "--by", "quick start"]
        subprocess.run(bulk, env=env, check=True)
        show_assets(settings.database_url.get_secret_value())
        print(console_hint(settings, demo=fake is not None))
        if not args.once:
            print(
                "workers running; publish a login with `python -m producers.login_event"
                " USERNAME`; Ctrl-C stops them"
            )
            while not stop and all(w.poll() is None for w in workers):
                if changes is not None:
                    changes.tick()
                time.sleep(0.5)
    finally:
        for w in [*workers, console, *([receiver] if receiver is not None else [])]:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        codes = [w.wait(15) for w in workers]
        console.wait(15)
        if receiver is not None:
            receiver.wait(15)
        if fake is not None:
            fake.stop()
    return 0 if all(c == 0 for c in codes) else 1


def console_hint(settings: Settings, *, demo: bool) -> str:
    """Where the console is, and (with the demo Jira) how to sign in to it."""
    host = settings.console_bind if settings.console_bind not in ("0.0.0.0", "::") else "127.0.0.1"
    url = f"http://{host}:{settings.console_port}"
    if not demo:
        return f"console on {url}: sign in with a Jira administrator's username and password"
    admin, user = DEMO_PEOPLE[0], DEMO_PEOPLE[1]
    return (
        f"console on {url}: sign in as {admin[0]} / {DEMO_PASSWORD} (a Jira administrator of"
        f" the demo Jira); {user[0]} / {DEMO_PASSWORD} is refused (not an administrator)"
    )


def start_receiver(fake: FakeJira, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The webhook receiver on a free local port, registered in the stand-in as an
    administrator would register it in Jira (with a secret)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret = secrets.token_hex(16)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "producers.jira_webhooks"],
        env={
            **env,
            "ASSETSYNC_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            "ASSETSYNC_WEBHOOK_SECRET": secret,
        },
    )
    fake.webhooks.register(f"http://127.0.0.1:{port}/webhooks/jira", secret=secret)
    print(
        f"webhook receiver on 127.0.0.1:{port}; the demo Jira renames a user every"
        f" {RENAME_EVERY:g} s and tells it"
    )
    return receiver


def show_assets(database_url: str, limit: int = 25) -> None:
    with psycopg.connect(database_url) as conn:
        rows = user_asset_rows(conn)
    for folder, username, full_name, active in rows[:limit]:
        print(f"  {folder:<14} {username:<16} {full_name or '':<24} active={active}")
    if len(rows) > limit:
        print(f"  … and {len(rows) - limit} more")
    per_folder = Counter(r[0] for r in rows)
    print(f"{len(rows)} user assets in {len(per_folder)} folders (SELECT * FROM user_assets)")


if __name__ == "__main__":
    sys.exit(main())
