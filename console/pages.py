"""The console's pages: each handler takes the request, the session and the submitted
form, does its I/O (it runs in a worker thread) and returns the answer.

What a handler decides is in ``settings_form`` (the settings) and ``runs_form`` (a run's
request); here they meet the asset store, Jira, RabbitMQ and the audit log.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from console import approval as approvals
from console import dead_letters, health, runs_form, settings_form
from console.health import QueueState
from console.sessions import Session, SessionCodec
from console.sign_in import SignInRefused, check_administrator
from producers.dead_letters.queue import DeadQueue
from schemas.messages import BulkSyncRequested
from worker.errors import ConfigError, PublishError, StaleSettings, TransientError
from worker.jira import JiraClient
from worker.settings import JIRA_FIELDS, Settings
from worker.store import Store
from worker.store import approvals as approval_store
from worker.store import console_reads as reads
from worker.store.preview import preview_rows
from worker.store.run_missing import pending
from worker.store.sync_settings import (
    StoredSettings,
    audit,
    audit_entries,
    load_settings,
)
from worker.store.sync_settings import (
    save_settings as store_settings,
)
from worker.sync_config import SYNC_SETTINGS, build, effective, from_environment, variable

log = logging.getLogger(__name__)

RUNS_PER_PAGE = 20
USERS_SHOWN = 100
AUDIT_SHOWN = 20
COUNTS = ("matched", "created", "updated", "unchanged", "deactivated", "missing", "failed")


@dataclass
class Console:
    """What the pages work with, made once in ``__main__``.

    :param settings: the environment's settings (the console's own and the workers').
    :param store: the asset store's connection pool.
    :param jira: the service account's client: Jira's flavour, groups of a run.
    :param publish: publishes a bulk request and returns once RabbitMQ confirmed it.
    :param codec: signs and reads session cookies.
    :param templates: the Jinja2 environment.
    :param dead_queue: opens the dead-letter tool's queue (a connection per use).
    :param queues: the work queues' depths and consumers, as RabbitMQ sees them now.
    """

    settings: Settings
    store: Store
    jira: JiraClient
    publish: Callable[[BulkSyncRequested], None]
    codec: SessionCodec
    templates: Environment
    dead_queue: Callable[[], DeadQueue]
    queues: Callable[[], list[QueueState]]

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("session", None)
        return HTMLResponse(self.templates.get_template(name).render(**values), status)


def renew(response: Response, session: Session | None) -> Response:
    """Have the answer carry ``session`` instead of the request's (None: signed out)."""
    response.session = session  # type: ignore[attr-defined]  # read by app._Web._keep
    return response


def console_of(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


# ---------------------------------------------------------------------- signing in


def sign_in(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    username = form.get("username", "").strip()
    try:
        admin = check_administrator(
            base_url=str(console.settings.jira_url),
            flavor=console.jira.flavor,
            username=username,
            secret=form.get("password", ""),
            timeout=console.settings.jira_timeout,
            verify=str(console.settings.jira_ca_bundle)
            if console.settings.jira_ca_bundle
            else True,
        )
    except SignInRefused as exc:
        log.info("sign-in as %r refused: %s", username[:80], exc)
        return sign_in_page(console, session, error=str(exc), username=username, status=403)
    except ConfigError as exc:  # the console's own Jira settings
        return sign_in_page(console, session, error=str(exc), username=username, status=503)
    log.info("%r signed in", admin.user)
    fresh = console.codec.new(user=admin.user, display_name=admin.display_name)
    return renew(RedirectResponse("/", status_code=303), fresh)


def sign_out(request: Request, session: Session, form: dict[str, str]) -> Response:
    return renew(RedirectResponse("/", status_code=303), None)


def sign_in_page(
    console: Console, session: Session, *, error: str = "", username: str = "", status: int = 200
) -> Response:
    return console.render(
        "sign_in.html",
        status,
        session=session,
        error=error,
        username=username,
        jira_url=console.settings.jira_url,
        cloud=console.jira.flavor == "cloud",
    )


# ---------------------------------------------------------------------- the page


def home(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    if not session.signed_in:
        return sign_in_page(console, session)
    saved = request.query_params.get("saved")
    return main_page(
        console,
        session,
        run=_uuid(request.query_params.get("run")),
        saved_message=f"Settings saved (version {saved})" if saved and saved.isdigit() else "",
    )


def main_page(
    console: Console,
    session: Session,
    *,
    run: UUID | None = None,
    form: settings_form.FormValues | None = None,
    saved_message: str = "",
    saved_error: bool = False,
    start: runs_form.StartForm | None = None,
    status: int = 200,
) -> Response:
    with console.store.transaction() as conn:
        stored = load_settings(conn)
        types = settings_form.syncable(reads.asset_types(conn))
        runs = reads.recent_runs(conn, limit=RUNS_PER_PAGE + 1)
        current = reads.run(conn, run) if run else (runs[0] if runs else None)
        entries = audit_entries(conn, limit=AUDIT_SHOWN)
    in_force = _in_force(console.settings, stored)
    return console.render(
        "sync.html",
        status,
        session=session,
        version=stored.version,
        saved_by=stored.saved_by,
        form=form or settings_form.shown(in_force, types),
        pinned=from_environment(console.settings),
        variable=variable,
        asset_types=types,
        jira_fields=list(JIRA_FIELDS),
        saved_message=saved_message,
        saved_error=saved_error,
        start=start or runs_form.StartForm(),
        current=current,
        current_id=run or (current.run_id if current else None),
        runs=runs[:RUNS_PER_PAGE],
        more=runs[RUNS_PER_PAGE - 1].run_id if len(runs) > RUNS_PER_PAGE else None,
        audit=entries,
    )


def save_settings(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    pinned = from_environment(console.settings)
    try:
        with console.store.transaction() as conn:
            stored = load_settings(conn)
            based_on = _int(form.get("version"))
            if based_on != stored.version:
                raise StaleSettings(
                    f"the settings were changed by {stored.saved_by or 'someone'} meanwhile"
                    f" (version {stored.version}); nothing was saved: look at them again"
                )
            before = _in_force(console.settings, stored)
            types = reads.asset_types(conn)
            changes = settings_form.read(form, types=types, pinned=pinned, in_force=before)
            new_values = {**stored.values, **changes}
            # Checked against the asset store exactly as every worker will check it.
            build(
                conn,
                console.settings,
                StoredSettings(version=stored.version + 1, values=new_values),
            )
            after = effective(console.settings, new_values)
            changed = [n for n in SYNC_SETTINGS if getattr(before, n) != getattr(after, n)]
            if not changed:
                return main_page(console, session, saved_message="Nothing changed: nothing saved")
            version = store_settings(
                conn, new_values, based_on=stored.version, by=session.user or ""
            )
            for name in changed:
                audit(
                    conn,
                    actor=session.user or "",
                    action="setting changed",
                    subject=name,
                    old=_plain(getattr(before, name)),
                    new=_plain(getattr(after, name)),
                )
    except (settings_form.Refused, StaleSettings, ConfigError) as exc:
        return main_page(
            console,
            session,
            form=_as_submitted(form, console, pinned),
            saved_message=f"Not saved: {exc}",
            saved_error=True,
            status=400,
        )
    log.info("sync settings version %d saved by %r: %s", version, session.user, ", ".join(changed))
    return RedirectResponse(f"/?saved={version}", status_code=303)


def start_run(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    submitted = runs_form.StartForm.of(form)
    try:
        message = runs_form.request(submitted, requested_by=session.user or "console")
        for group in message.groups:
            if not console.jira.group_exists(group):
                raise runs_form.Refused(f"Jira has no group {group!r}; nothing was started")
        console.publish(message)
    except runs_form.Refused as exc:
        return main_page(console, session, start=submitted.refused(str(exc)), status=400)
    except (PublishError, TransientError, ConfigError) as exc:
        return main_page(
            console, session, start=submitted.refused(f"{exc}; nothing was started"), status=503
        )
    with console.store.transaction() as conn:
        audit(
            conn,
            actor=session.user or "",
            action="run requested",
            subject=str(message.request_id),
            new=runs_form.described(message),
        )
    log.info("run %s requested by %r", message.request_id, session.user)
    return RedirectResponse(f"/?run={message.request_id}#run-heading", status_code=303)


# ---------------------------------------------------------------------- dead letters


def dead_letters_page(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The dead letters with their reasons; reading them is on demand (each read counts
    a delivery at the broker), the count is not."""
    console = console_of(request)
    done = request.query_params.get("done") or ""
    shown: dead_letters.Listing | None = None
    error = ""
    if request.query_params.get("show"):
        try:
            shown = dead_letters.listing(console.dead_queue)
        except dead_letters.NotDone as exc:
            error = str(exc)
    return console.render(
        "dead_letters.html",
        session=session,
        shown=shown,
        error=error,
        done=done,
        now=datetime.now(UTC),
    )


def dead_letter_confirm(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    letter_id, action = request.query_params.get("id", ""), request.query_params.get("action", "")
    if action not in dead_letters.ACTIONS or not letter_id:
        return console.render("refused.html", 404, session=session, message="Nothing to confirm.")
    return console.render(
        "dead_letter_confirm.html", session=session, letter_id=letter_id[:200], action=action
    )


def dead_letter_act(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    letter_id, action = form.get("id", ""), form.get("action", "")
    try:
        letter = dead_letters.act(console.dead_queue, letter_id, action)
    except dead_letters.NotDone as exc:
        return RedirectResponse(f"/dead-letters?show=1&done={quote('Not done: ' + str(exc))}", 303)
    with console.store.transaction() as conn:
        audit(
            conn,
            actor=session.user or "",
            action=f"dead letter {dead_letters.ACTIONS[action]}",
            subject=letter.id,
            old={"type": letter.type, "reason": letter.reason, "identity": letter.identity},
        )
    log.info("%r %s dead letter %s", session.user, dead_letters.ACTIONS[action], letter.id)
    message = f"{letter.id} {dead_letters.ACTIONS[action]}"
    return RedirectResponse(f"/dead-letters?show=1&done={quote(message)}", 303)


# ---------------------------------------------------------------------- health


def health_page(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    try:
        queues = console.queues()
        broker_error = ""
    except Exception as exc:  # RabbitMQ's trouble is what this page reports
        queues, broker_error = [], f"RabbitMQ cannot be asked: {exc}"
    database = console.store.ping()
    hooks_url = console.settings.console_webhooks_url
    webhooks = health.webhook_receiver(hooks_url) if hooks_url else None
    sources = health.security_log_sources(console.settings.security_log_urls)
    with console.store.transaction() as conn:
        stored = load_settings(conn)
        running = reads.recent_runs(conn, limit=1)
    return console.render(
        "health.html",
        session=session,
        queues=queues,
        broker_error=broker_error,
        database=database,
        stored=stored,
        newest=running[0] if running else None,
        webhooks=webhooks,
        security_logs=sources,
    )


# ---------------------------------------------------------------------- runs


def runs_list(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    with console.store.transaction() as conn:
        runs = reads.recent_runs(
            conn, limit=RUNS_PER_PAGE + 1, before=_uuid(request.query_params.get("before"))
        )
    more = runs[RUNS_PER_PAGE - 1].run_id if len(runs) > RUNS_PER_PAGE else None
    return console.render("runs.html", session=session, runs=runs[:RUNS_PER_PAGE], more=more)


def run_page(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    if run_id is None:
        return console.render("refused.html", 404, session=session, message="No such run.")
    with console.store.transaction() as conn:
        run = reads.run(conn, run_id)
        failed = (
            list(reads.failed_users(conn, run_id, limit=USERS_SHOWN)) if run and run.failed else []
        )
        missing = (
            list(reads.missing_users(conn, run_id, limit=USERS_SHOWN))
            if run and run.missing
            else []
        )
        waiting = len(pending(conn, run_id)) if run and run.missing else 0
        latest = approval_store.latest(conn, run_id) if run and run.missing else None
        not_confirmed = (
            approval_store.failures(conn, run_id, limit=USERS_SHOWN)
            if latest and latest.failed
            else []
        )
    return console.render(
        "run.html",
        session=session,
        run=run,
        run_id=run_id,
        failed=failed,
        missing=missing,
        waiting=waiting if approvals.approvable(run, waiting, latest) else 0,
        approval=latest,
        approval_state=approvals.state(latest) if latest else "",
        approval_summary=approvals.summary(latest) if latest else "",
        not_confirmed=not_confirmed,
    )


def approve(request: Request, session: Session, form: dict[str, str]) -> Response:
    """GET: what marking would do, and the confirmation; POST: record the approval,
    which a worker carries out in the background (the run's page follows it)."""
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    with console.store.transaction() as conn:
        run = reads.run(conn, run_id) if run_id else None
        waiting = pending(conn, run_id) if run_id else []
        latest = approval_store.latest(conn, run_id) if run_id else None
        if run_id is None or not approvals.approvable(run, len(waiting), latest):
            if run_id is not None and latest is not None and request.method == "POST":
                # A second click, or a second administrator: the approval goes on.
                return RedirectResponse(f"/runs/{run_id}#approval-heading", status_code=303)
            return console.render(
                "refused.html",
                404,
                session=session,
                message="This run has no users waiting for approval.",
            )
        if request.method == "GET":
            return console.render(
                "approve.html", session=session, run=run, run_id=run_id, waiting=waiting
            )
        recorded = approval_store.approve(conn, run_id, by=session.user or "", waiting=len(waiting))
        if recorded is not None:
            audit(
                conn,
                actor=session.user or "",
                action="mark missing approved",
                subject=str(run_id),
                new={"users": len(waiting)},
            )
    if recorded is not None:
        log.info(
            "%r approved marking missing %d users of run %s", session.user, len(waiting), run_id
        )
    return RedirectResponse(f"/runs/{run_id}#approval-heading", status_code=303)


def approval_progress(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The run's newest approval as JSON, for the page's progress bar."""
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    with console.store.connection() as conn:
        latest = approval_store.latest(conn, run_id) if run_id else None
    if latest is None:
        return JSONResponse({"error": "no approval of this run"}, 404)
    return JSONResponse(
        {
            "state": approvals.state(latest),
            "summary": approvals.summary(latest),
            "checked": latest.checked,
            "waiting": latest.waiting,
            "marked": latest.marked,
            "came_back": latest.came_back,
            "failed": latest.failed,
        }
    )


PREVIEW_PAGE = 100
PREVIEW_WORDS = {
    "created": "create",
    "updated": "update",
    "deactivated": "deactivate",
    "unchanged": "leave unchanged",
    "failed": "fail",
    "missing": "mark missing",
}


def preview(request: Request, session: Session, form: dict[str, str]) -> Response:
    """A dry run's users, what the real run would do to each, filterable, paged."""
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    kind, text, after = _preview_filters(request)
    with console.store.transaction() as conn:
        run = reads.run(conn, run_id) if run_id else None
        rows = (
            list(
                preview_rows(
                    conn, run_id, kind=kind, text=text, after=after, limit=PREVIEW_PAGE + 1
                )
            )
            if run_id and run and run.dry_run
            else []
        )
    if run is None or not run.dry_run:
        return console.render("refused.html", 404, session=session, message="No such dry run.")
    more = rows[PREVIEW_PAGE - 1][1] if len(rows) > PREVIEW_PAGE else None
    return console.render(
        "preview.html",
        session=session,
        run=run,
        run_id=run_id,
        rows=rows[:PREVIEW_PAGE],
        more=more,
        kind=kind or "",
        text=text or "",
        words=PREVIEW_WORDS,
        query=urlencode({k: v for k, v in (("what", kind), ("q", text)) if v}),
    )


def preview_csv(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    if run_id is None:
        return console.render("refused.html", 404, session=session, message="No such dry run.")
    kind, text, _ = _preview_filters(request)

    def rows() -> Iterator[str]:
        yield _csv_line(("would", "jira_id", "username", "display_name", "changes"))
        with console.store.transaction() as conn:
            for what, jira_id, name, display, fields in preview_rows(
                conn, run_id, kind=kind, text=text, after=None, limit=None
            ):
                yield _csv_line(
                    (PREVIEW_WORDS.get(what, what), jira_id, name, display, _changes(fields))
                )

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dry-run-{run_id}.csv"'},
    )


def _preview_filters(request: Request) -> tuple[str | None, str | None, str | None]:
    kind = request.query_params.get("what") or None
    text = (request.query_params.get("q") or "").strip()[:200] or None
    return (
        (kind if kind in PREVIEW_WORDS else None),
        text,
        request.query_params.get("after") or None,
    )


def _changes(fields: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{name}: {_shown(old)} → {_shown(new)}" for name, (old, new) in fields.items()
    )


def run_progress(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The run's counts as JSON, for the page's progress bar: the same summary row the
    admin script's ``status`` reads, whatever the run's size."""
    console = console_of(request)
    run_id = _uuid(request.path_params["run_id"])
    if run_id is None:
        return JSONResponse({"error": "no such run"}, 404)
    with console.store.connection() as conn:
        run = reads.run(conn, run_id)
    if run is None:  # published, not yet taken by a worker
        return JSONResponse(
            {"state": "requested", "error": None, "done": 0, **dict.fromkeys(COUNTS, 0)}
        )
    return JSONResponse(
        {
            "state": run.state,
            "error": run.error,
            "done": run.done,
            **{n: getattr(run, n) for n in COUNTS},
        }
    )


def run_csv(request: Request, session: Session, form: dict[str, str]) -> Response:
    console = console_of(request)
    run_id, which = _uuid(request.path_params["run_id"]), request.path_params["which"]
    if run_id is None or which not in ("failed", "missing"):
        return console.render("refused.html", 404, session=session, message="No such list.")
    header = (
        ("jira_id", "reason")
        if which == "failed"
        else ("jira_id", "asset_id", "marked_missing", "came_back", "not_confirmed_because")
    )

    def rows() -> Iterator[str]:
        with console.store.transaction() as conn:
            listed = (
                reads.failed_users(conn, run_id, limit=None)
                if which == "failed"
                else reads.missing_users(conn, run_id, limit=None)
            )
            yield _csv_line(header)
            for row in listed:
                yield _csv_line(row)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-{which}.csv"'},
    )


# ---------------------------------------------------------------------- helpers


def _in_force(env: Settings, stored: StoredSettings) -> Settings:
    try:
        return effective(env, stored.values)
    except ValueError:
        return env  # a version saved past the console; the workers refuse it too


def _as_submitted(
    form: Mapping[str, str], console: Console, pinned: frozenset[str]
) -> settings_form.FormValues:
    """The form as it was sent, so that a refused save can be corrected, not retyped."""
    maps: dict[str, dict[str, str]] = {}
    for name, value in form.items():
        if name.startswith(settings_form.MAP_PREFIX) and value:
            type_name, _, field = name[len(settings_form.MAP_PREFIX) :].partition(":")
            maps.setdefault(type_name, {})[field] = value
    return settings_form.FormValues(
        sync_on_login=form.get("sync_on_login") == "on",
        asset_type=form.get("asset_type", console.settings.asset_type),
        folder=form.get("folder", ""),
        alphabetical_subfolders=form.get("alphabetical_subfolders") == "on",
        missing_users=form.get("missing_users", "mark"),
        missing_limit=form.get("missing_limit", ""),
        maps=maps,
    )


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _uuid(text: str | None) -> UUID | None:
    try:
        return UUID(text) if text else None
    except ValueError:
        return None


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return -1


def _csv_line(row: tuple[Any, ...]) -> str:
    out = io.StringIO()
    # A cell a spreadsheet would run as a formula is quoted as text.
    csv.writer(out).writerow(
        ["'" + c if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row]
    )
    return out.getvalue()


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _filters(run: reads.RunRow) -> str:
    parts = []
    if run.username_prefix:
        parts.append(f"prefix {run.username_prefix!r}")
    if run.groups:
        parts.append("groups " + ", ".join(run.groups))
    return "; ".join(parts) or "every user"


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


FILTERS = {"when": _when, "filters": _filters, "shown": _shown, "changes": _changes}
