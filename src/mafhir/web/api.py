"""The JSON API under the pages (``/api``): status, items, dead letters, replay, discard —
for an EHR vendor's monitoring. Token authentication (``Authorization: Bearer …``, a
token from ``mafhir users token NAME``); the same roles, views and audit as the pages.
Errors are ``{"error": {"status", "problems": [{"location", "message", "code"}]}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InputError, Problem
from ..outbox.audit import ITEM_ID_SYSTEM
from . import views
from .app import Dashboard
from .filters import item_id, queue_filters
from .openapi import document
from .webstore import User

__all__ = ["routes"]

_MAX_BODY = 64 * 1024


def _error(status: int, *problems: Problem) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "problems": [
        {"location": p.location, "message": p.message, "code": p.code} for p in problems]}},
        status_code=status)


def routes(dash: Dashboard) -> list[Route]:
    def bearer(request: Request) -> User | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return dash.web.token_user(token.strip())

    def expired(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip()) \
            and dash.web.token_expired(token.strip())

    def guarded(role: str, fn: Callable[[Request, User, Any], Response],
                body: bool = False) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            data: Any = None
            if body:
                raw = await request.body()
                if len(raw) > _MAX_BODY:
                    return _error(413, Problem("body", f"at most {_MAX_BODY} bytes", "too-long"))
                try:
                    data = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    return _error(400, Problem("body", "not JSON", "structure"))
            return await run_in_threadpool(run, request, role, fn, data)
        return endpoint

    def run(request: Request, role: str, fn: Callable[[Request, User, Any], Response],
            data: Any) -> Response:
        user = bearer(request)
        if user is None:
            if expired(request):
                return _error(401, Problem("Authorization", "this token has expired: make a "
                                           "new one with `mafhir users token NAME`", "expired"))
            return _error(401, Problem("Authorization", "a Bearer token from `mafhir users "
                                                        "token NAME` is needed", "login"))
        if not user.may(role):
            return _error(403, Problem("Authorization", f"this needs the {role} role",
                                       "forbidden"))
        try:
            return fn(request, user, data)
        except InputError as exc:
            return _error(400, *exc.problems)

    def status(request: Request, user: User, _data: Any) -> Response:
        return JSONResponse(views.overview(dash.outbox, dash.inbound, days=dash.days))

    def items(request: Request, user: User, _data: Any) -> Response:
        filters = queue_filters(request.query_params)
        total, found = dash.outbox.search(**filters)
        return JSONResponse({"total": total, "items": views.item_rows(dash.outbox, found)})

    def item(request: Request, user: User, _data: Any) -> Response:
        found = dash.outbox.get(item_id(request.path_params["id"]))
        if found is None:
            return _error(404, Problem("id", "no such outbox item", "not-found"))
        return JSONResponse(views.item_detail(dash.outbox, found, phi=False))

    def dead_letters(request: Request, user: User, _data: Any) -> Response:
        filters = queue_filters({**request.query_params, "state": "dead"})
        total, found = dash.outbox.search(**filters)
        return JSONResponse({"total": total, "items": views.item_rows(dash.outbox, found)})

    def act(what: str) -> Callable[[Request, User, Any], Response]:
        def action(request: Request, user: User, data: Any) -> Response:
            ident = item_id(request.path_params["id"])
            reason: Any = ""
            if what == "discard":
                reason = data.get("reason") if isinstance(data, dict) else None
                if not isinstance(reason, str) or not reason.strip() or len(reason) > 1000:
                    raise InputError([Problem("reason", "a discard needs the reason (1 to "
                                                        "1000 characters)", "required")])
            n = dash.outbox.replay(ident) if what == "replay" else \
                dash.outbox.discard(ident, reason.strip())
            dash.audit(request, user.name, what, outcome="ok" if n else "refused",
                       entity=(ITEM_ID_SYSTEM, str(ident)),
                       detail="API" if n else "API: not a dead letter")
            if not n:
                return _error(409, Problem("id", "not a dead letter", "conflict"))
            return JSONResponse({"id": ident, "done": what})
        return action

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document())

    return [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/status", guarded("viewer", status), methods=["GET"]),
        Route("/api/items", guarded("viewer", items), methods=["GET"]),
        Route("/api/items/{id}", guarded("viewer", item), methods=["GET"]),
        Route("/api/dead-letters", guarded("viewer", dead_letters), methods=["GET"]),
        Route("/api/dead-letters/{id}/replay", guarded("operator", act("replay"), body=True),
              methods=["POST"]),
        Route("/api/dead-letters/{id}/discard", guarded("operator", act("discard"), body=True),
              methods=["POST"]),
    ]
