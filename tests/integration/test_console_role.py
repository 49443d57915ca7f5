"""The console works with exactly the grants of its database role (``assetsync_console``):
every page and every change it offers, run as a login role in that group, against runs
the workers (the owner's role) leave in the store."""

from __future__ import annotations

import contextlib
import re

import psycopg

from lab.harness import wait_for, wait_run_finished, worker_env
from tests.console_support import ConsoleProcess, console_role, csrf, signed_in


def newest_run(database: str, *, after: set[str]) -> str:
    def found() -> str | None:
        with psycopg.connect(database) as conn:
            rows = conn.execute("SELECT id::text FROM sync_runs").fetchall()
        fresh = {r[0] for r in rows} - after
        return fresh.pop() if fresh else None

    return wait_for(found, what="the run the console requested")


def test_every_page_and_change_of_the_console_works_with_its_roles_grants(
    infra, database, broker, jira, start_worker, tmp_path
):
    jira.add_sample_users(8)
    jira.accounts.add("ann", "pw", administrator=True, display_name="Ann Admin")
    start_worker(env={"ASSETSYNC_MISSING_LIMIT": "1"})
    with console_role(infra.database_url, database) as url:
        env = worker_env(
            amqp_url=infra.amqp_url, database_url=url, topology=broker.topology, jira_url=jira.url
        )
        console = ConsoleProcess(env=env, log_path=tmp_path / "console.log").start()
        try:
            with contextlib.closing(signed_in(console)) as http:
                runs: list[str] = []

                def start(**fields: str) -> str:
                    page = http.get("/")
                    answer = http.post("/runs", data={"csrf": csrf(page), **fields})
                    assert answer.status_code == 303, answer.text
                    run_id = newest_run(database, after=set(runs))
                    runs.append(run_id)
                    return str(wait_run_finished(database, run_id)["run_id"])

                page = http.get("/")
                form = dict(re.findall(r'<input id="\w+" name="(\w+)" value="([^"]*)"', page.text))
                form.update(
                    csrf=csrf(page),
                    version="0",
                    folder="People",
                    sync_on_login="on",
                    asset_type="Employee",
                    missing_users="mark",
                    missing_limit="1",
                    **{"map:Employee:Username": "name", "map:Employee:Active": "active"},
                )
                saved = http.post("/settings", data=form)
                assert saved.status_code == 303, saved.text
                dry = start(prefix="", dry_run="on")
                real = start()
                for user in jira.users()[:3]:
                    jira.remove_user(user["key"])
                over = start()

                for path in (
                    "/",
                    "/runs",
                    f"/runs?before={real}",
                    f"/runs/{dry}",
                    f"/runs/{dry}/progress",
                    f"/runs/{dry}/preview",
                    f"/runs/{dry}/preview?what=created&q=user",
                    f"/runs/{dry}/preview.csv?q=a",
                    f"/runs/{over}",
                    f"/runs/{over}/failed.csv",
                    f"/runs/{over}/missing.csv",
                    f"/runs/{over}/approve",
                    "/health",
                    "/dead-letters",
                    "/dead-letters?show=1",
                ):
                    answer = http.get(path)
                    assert answer.status_code == 200, (path, answer.text[-500:])
                confirm = http.get(f"/runs/{over}/approve")
                approved = http.post(f"/runs/{over}/approve", data={"csrf": csrf(confirm)})
                assert approved.status_code == 303, approved.text
                assert http.get(f"/runs/{over}/approval").json()["waiting"] == 3
                wait_for(
                    lambda: http.get(f"/runs/{over}/approval").json()["state"] == "done",
                    timeout=30,
                    what="the workers to carry out the approval",
                )
                assert (
                    "Done: 3 marked missing, 0 came back, 0 failed."
                    in http.get(f"/runs/{over}").text
                )
                signed_out = http.post("/sign-out", data={"csrf": csrf(http.get("/"))})
                assert signed_out.status_code == 303
        finally:
            console.terminate()
    assert "permission denied" not in console.log()
    assert "Traceback" not in console.log()
