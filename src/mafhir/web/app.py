"""The dashboard's ASGI application: Starlette, Jinja2 pages rendered on the server, the
JSON API under ``/api``, signed session cookies, CSRF tokens, roles and the audit trail.

Why Starlette and not FastAPI: the pages are a dozen plain forms and tables, and the API
is five routes whose OpenAPI document is written out by hand (:mod:`.openapi`), so the
request models and dependency injection FastAPI would add buy nothing here; Starlette is
the one small layer both would stand on. No script is sent at all (the Content Security
Policy forbids it): confirmations are pages of their own and filters are GET forms, so
there is no front-end build, no vendored file, and every action works without JS.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError
from ..hl7v2.store import MessageStore
from ..outbox.store import OutboxStore, open_store
from .audit import web_event
from .charts import bars
from .oidc import OidcConfig, Provider
from .panels import Panel, collect_panels
from .security import HEADERS, LoginThrottle, check_csrf, new_csrf
from .views import DaySeries
from .webstore import ROLES, User, WebStore

__all__ = ["Dashboard", "WebConfig", "create_app"]

SECRET_ENV = "MAFHIR_WEB_SECRET"
_STYLE = (Path(__file__).parent / "templates" / "style.css").read_text(encoding="utf-8")


@dataclass(frozen=True)
class WebConfig:
    """What ``mafhir serve`` was told."""

    db: str = "mafhir.db"
    #: The listener's message store (``mafhir listen --store``); None: no inbound pages.
    inbound: str | None = None
    #: The listener's MLLP address: "reprocess" sends a message to it again.
    listener: tuple[str, int] | None = None
    #: Signs the session cookies; default ``$MAFHIR_WEB_SECRET``, else a random key (every
    #: restart then signs everyone out).
    secret: str | None = None
    #: Served over TLS: cookies are marked Secure.
    https: bool = False
    session_seconds: int = 8 * 3600


class Dashboard:
    """The stores, the templates and the guards one app instance uses."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.outbox: OutboxStore = open_store(config.db)
        self.web = WebStore(config.db)
        self.inbound = MessageStore(config.inbound) if config.inbound else None
        self.panels: dict[str, Panel] = {p.name: p for p in collect_panels()}
        self.throttle = LoginThrottle()
        self.days = DaySeries()
        self.oidc = OidcConfig.from_env(os.environ)
        self._provider: Provider | None = None
        self.templates = Environment(loader=PackageLoader("mafhir.web", "templates"),
                                     autoescape=select_autoescape(["html"]))
        self.templates.globals.update(bars=bars, roles=ROLES)

    def close(self) -> None:
        self.outbox.close()
        self.web.close()
        if self.inbound is not None:
            self.inbound.close()

    def provider(self) -> Provider:
        """The identity provider (its discovery document read at first use)."""
        assert self.oidc is not None
        if self._provider is None:
            self._provider = Provider(self.oidc)
        return self._provider

    # ------------------------------------------------------------------ who is asking
    def user(self, request: Request) -> User | None:
        """The signed-in user, looked up again on every request (a removed user or a
        changed role takes effect at once, not when the cookie expires)."""
        name = request.session.get("user")
        if not isinstance(name, str):
            return None
        started = request.session.get("since")
        if not isinstance(started, (int, float)) or \
                time.time() - started > self.config.session_seconds:
            request.session.clear()
            return None
        role = request.session.get("oidc_role")
        if name.startswith("oidc:") and isinstance(role, str) and self.oidc is not None:
            return User(name, role)  # from the provider's groups, for this session
        return self.web.user(name)

    def audit(self, request: Request, who: str, action: str, *, outcome: str = "ok",
              entity: tuple[str, str] | None = None, detail: str | None = None) -> None:
        """Keep the AuditEvent of an action (before its answer goes out)."""
        address = request.client.host if request.client else None
        self.web.record(who, action, web_event(action, who, time.time(), outcome=outcome,
                                               entity=entity, address=address,
                                               detail=detail))

    # ------------------------------------------------------------------ answers
    def render(self, request: Request, template: str, status: int = 200,
               **context: Any) -> HTMLResponse:
        user = self.user(request)
        csrf = request.session.get("csrf")
        if not isinstance(csrf, str):
            csrf = request.session["csrf"] = new_csrf()
        html = self.templates.get_template(template).render(
            user=user, csrf=csrf, oidc=self.oidc is not None,
            panels=sorted(self.panels.values(), key=lambda p: p.title),
            inbound=self.inbound is not None, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status)

    def refuse(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", status=status, message=message)

    def problems(self, request: Request, exc: InputError) -> HTMLResponse:
        return self.render(request, "error.html", status=400,
                           message="; ".join(str(p) for p in exc.problems))


Handler = Callable[[Request], Awaitable[Response]]


def page(dash: Dashboard, role: str = "viewer", action: str | None = None
         ) -> Callable[[Callable[..., Response]], Handler]:
    """A page for ``role`` and above: without a session, to the login page; with too low
    a role, 403. With ``action`` it is a state-changing POST: its CSRF token must match
    the session's, and a refusal is audited under ``action``. The page runs in a worker
    thread (the stores block; the event loop must not); a bad value it names is a 400
    listing every problem."""

    def wrap(fn: Callable[..., Response]) -> Handler:
        async def endpoint(request: Request) -> Response:
            data = await request.form() if action is not None else None
            return await run_in_threadpool(_guarded, dash, request, fn, role, action, data)
        return endpoint
    return wrap


def _guarded(dash: Dashboard, request: Request, fn: Callable[..., Response], role: str,
             action: str | None, data: FormData | None) -> Response:
    user = dash.user(request)
    if user is None:
        if action is not None:
            return dash.refuse(request, 401, "Sign in first.")
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if data is not None and action is not None and \
            not check_csrf(request.session.get("csrf"), data.get("csrf")):
        dash.audit(request, user.name, action, outcome="refused",
                   detail="CSRF token missing or wrong")
        return dash.refuse(request, 403, "The form's security token is missing or out of "
                                         "date: reload the page and try again.")
    if not user.may(role):
        if action is not None:
            dash.audit(request, user.name, action, outcome="refused",
                       detail=f"needs the {role} role")
        return dash.refuse(request, 403, f"This needs the {role} role; you are {user.role}.")
    try:
        return fn(request, user, data) if action is not None else fn(request, user)
    except InputError as exc:
        return dash.problems(request, exc)


class Headers:
    """Every response carries :data:`mafhir.web.security.HEADERS` (HSTS too over TLS)."""

    def __init__(self, app: ASGIApp, https: bool) -> None:
        self.app = app
        self.extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
        if https:
            self.extra.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in self.extra if h[0] not in have)]
            await send(message)

        await self.app(scope, receive, sending)


def create_app(config: WebConfig) -> Starlette:
    """The dashboard for ``config`` (``mafhir serve`` runs it under uvicorn)."""
    from .api import routes as api_routes
    from .pages import routes as page_routes

    dash = Dashboard(config)
    secret = config.secret or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
    routes = [Route("/style.css", lambda _r: Response(_STYLE, media_type="text/css")),
              *page_routes(dash), *api_routes(dash)]
    app = Starlette(routes=routes, middleware=[
        Middleware(Headers, https=config.https),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="mafhir_session",
                   max_age=config.session_seconds, same_site="strict",
                   https_only=config.https)])
    app.state.dashboard = dash
    return app
