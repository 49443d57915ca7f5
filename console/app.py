"""The console's web application: routes, sessions, the checks every request passes.

Every page is rendered on the server by Jinja2 with escaping on, so a value from Jira or
a message shows as text, whatever it holds. Every response carries a strict
Content-Security-Policy (scripts only from ``/static``, no inline script or style).
Every state-changing request is a POST that must carry the session's CSRF token and,
where the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from
the console itself. Handlers do their I/O (PostgreSQL, Jira, RabbitMQ) in Starlette's
thread pool; the event loop only parses and answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import pages
from console.sessions import COOKIE, Session, SessionCodec, same_token

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Handler = Callable[[Request, Session, dict[str, str]], Response]


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = lambda name: f"/static/{name}"
    env.filters.update(pages.FILTERS)
    return env


def create_app(console: pages.Console, *, secure_cookies: bool) -> Starlette:
    """The ASGI app for ``console`` (its store, Jira, publisher and session codec).

    :param secure_cookies: mark the session cookie ``Secure`` (always, unless the
        console listens on loopback only, where browsers are on the same machine).
    """
    web = _Web(console, secure_cookies=secure_cookies)
    routes = [
        Route("/healthz", web.healthz),
        Route("/readyz", web.readyz),
        Route("/", web.page(pages.home, signed_in=False)),
        Route("/sign-in", web.page(pages.sign_in, signed_in=False), methods=["POST"]),
        Route("/sign-out", web.page(pages.sign_out), methods=["POST"]),
        Route("/settings", web.page(pages.save_settings), methods=["POST"]),
        Route("/runs", web.page(pages.start_run), methods=["POST"]),
        Route("/runs", web.page(pages.runs_list)),
        Route("/runs/{run_id}", web.page(pages.run_page)),
        Route("/runs/{run_id}/progress", web.page(pages.run_progress)),
        Route("/runs/{run_id}/approve", web.page(pages.approve), methods=["GET", "POST"]),
        Route("/runs/{run_id}/approval", web.page(pages.approval_progress)),
        Route("/runs/{run_id}/preview", web.page(pages.preview)),
        Route("/runs/{run_id}/preview.csv", web.page(pages.preview_csv)),
        Route("/runs/{run_id}/{which}.csv", web.page(pages.run_csv)),
        Route("/dead-letters", web.page(pages.dead_letters_page)),
        Route("/dead-letters/confirm", web.page(pages.dead_letter_confirm)),
        Route("/dead-letters", web.page(pages.dead_letter_act), methods=["POST"]),
        Route("/health", web.page(pages.health_page)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer (static files are cacheable)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if static:
                    headers["Cache-Control"] = "public, max-age=300"
            await send(message)

        await self.app(scope, receive, with_headers)


class _Web:
    def __init__(self, console: pages.Console, *, secure_cookies: bool) -> None:
        self.console = console
        self.secure = secure_cookies

    async def healthz(self, request: Request) -> Response:
        up = await run_in_threadpool(self.console.store.ping)
        return PlainTextResponse(f"console: ok\ndatabase: {'ok' if up else 'down'}\n")

    async def readyz(self, request: Request) -> Response:
        up = await run_in_threadpool(self.console.store.ping)
        return PlainTextResponse(f"database: {'ok' if up else 'down'}\n", 200 if up else 503)

    def page(self, handler: Handler, *, signed_in: bool = True) -> Any:
        """An endpoint around ``handler``: the session read (or begun), a POST's origin
        and CSRF token checked, the form read, the handler run in the thread pool, the
        session cookie renewed on the answer."""
        codec: SessionCodec = self.console.codec

        async def endpoint(request: Request) -> Response:
            session = codec.decode(request.cookies.get(COOKIE))
            if signed_in and (session is None or not session.signed_in):
                if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                    return RedirectResponse("/", status_code=303)
                return _refused(self.console, 401, "You are not signed in (or your session ended).")
            if session is None:
                session = codec.new()
            form: dict[str, str] = {}
            if request.method == "POST":
                problem = _foreign(request)
                if problem is None:
                    form, problem = await _read_form(request)
                if problem is None and not same_token(session, form.get("csrf")):
                    problem = "This form is out of date or was not sent from this console."
                if problem is not None:
                    log.warning("refused %s %s: %s", request.method, request.url.path, problem)
                    return _refused(self.console, 403, problem)
            response = await run_in_threadpool(handler, request, session, form)
            self._keep(response, request, session)
            return response

        return endpoint

    def _keep(self, response: Response, request: Request, session: Session) -> None:
        """Renew the session on the answer: a handler that changed it (sign-in, sign-out)
        left the new one on ``response.session``; otherwise its last use moves on."""
        changed = getattr(response, "session", session)
        if changed is None:
            response.delete_cookie(COOKIE, path="/")
            return
        response.set_cookie(
            COOKIE,
            self.console.codec.encode(self.console.codec.touch(changed)),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )


def _foreign(request: Request) -> str | None:
    """Why a POST seems to come from another site, or None.

    Browsers name the page a form was posted from (``Origin``) and whether it is this
    site (``Sec-Fetch-Site``); the CSRF token is checked as well, for clients that say
    neither.
    """
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin and origin != "null" and urlsplit(origin).netloc != host:
        return (
            f"a form posted from {origin} is refused: only this console's own pages may change it"
        )
    if origin == "null":
        return "a form posted from a page without an origin is refused"
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return "a form posted from another site is refused"
    return None


async def _read_form(request: Request) -> tuple[dict[str, str], str | None]:
    """An URL-encoded form, bounded in size; each name once (the first value)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        return {}, "only forms of this console are accepted"
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}, "the form is too large"
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        return {}, "the form could not be read"
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form, None


def _refused(console: pages.Console, status: int, message: str) -> Response:
    html = console.templates.get_template("refused.html").render(message=message, session=None)
    return HTMLResponse(html, status_code=status)
