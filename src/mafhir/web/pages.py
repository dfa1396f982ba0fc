"""The dashboard's HTML pages: login, overview, queue, items, dead letters (replay and
discard behind a confirmation), inbound messages (reprocess), plugin panels, users and
the audit trail. Each reads through :mod:`.views` and writes through the stores' own
functions; every action is audited before its answer goes out."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import InputError, Problem
from ..hl7v2.mllp import MLLPClient
from ..outbox.audit import ITEM_ID_SYSTEM, phi_view_event
from . import views
from .app import Dashboard, page
from .filters import inbound_filters, item_id, queue_filters
from .oidc import OidcFlow
from .security import check_csrf, new_csrf
from .webstore import User

__all__ = ["MESSAGE_SYSTEM", "routes"]

#: The inbound store's row id of a message, as AuditEvent entities name it.
MESSAGE_SYSTEM = "urn:mafhir:hl7v2:message-id"
_USER_SYSTEM = "urn:mafhir:dashboard:user"


def _safe_next(target: str | None) -> str:
    """Only a path of this site (never ``//host`` or a scheme) after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def routes(dash: Dashboard) -> list[Route]:
    async def login_form(request: Request) -> Response:
        if dash.user(request) is not None:
            return RedirectResponse("/", status_code=303)
        return dash.render(request, "login.html", next=_safe_next(request.query_params.get(
            "next")))

    async def login(request: Request) -> Response:
        form = await request.form()
        return await run_in_threadpool(_login, request, form)

    def _login(request: Request, form: FormData) -> Response:
        name = str(form.get("username") or "")[:64]
        address = request.client.host if request.client else "?"
        if not check_csrf(request.session.get("csrf"), form.get("csrf")):
            dash.audit(request, name or "?", "login", outcome="refused",
                       detail="CSRF token missing or wrong")
            return dash.refuse(request, 403, "The form's security token is missing or out "
                                             "of date: reload the page and try again.")
        if dash.throttle.blocked(address):
            dash.audit(request, name or "?", "login", outcome="refused",
                       detail="too many failed logins from this address")
            return dash.render(request, "login.html", status=429, next="/",
                               error="Too many failed sign-ins from here: wait a few "
                                     "minutes.")
        result = dash.web.login(name, str(form.get("password") or ""))
        if result.user is None:
            dash.throttle.failed(address)
            dash.audit(request, name or "?", "login", outcome="refused",
                       detail="account locked" if result.result == "locked"
                       else "wrong name or password")
            message = ("This account is locked for a while after too many failed "
                       "sign-ins." if result.result == "locked"
                       else "Wrong name or password.")
            return dash.render(request, "login.html", status=401, error=message,
                               next=_safe_next(str(form.get("next") or "/")))
        request.session.clear()  # a new session: nothing from before the login carries over
        request.session.update(user=result.user.name, since=time.time(), csrf=new_csrf())
        dash.audit(request, result.user.name, "login")
        return RedirectResponse(_safe_next(str(form.get("next") or "/")), status_code=303)

    def oidc_redirect(request: Request) -> str:
        return str(request.url_for("oidc_callback"))

    def oidc_start(request: Request) -> Response:
        if dash.oidc is None:
            return dash.refuse(request, 404, "No identity provider is configured.")
        flow = OidcFlow.start()
        try:
            provider = dash.provider()
        except (OSError, ValueError, KeyError, InputError) as exc:
            return dash.refuse(request, 502, f"The identity provider could not be reached "
                                             f"or read ({type(exc).__name__}).")
        request.session["oidc"] = [flow.state, flow.nonce, flow.verifier]
        return RedirectResponse(flow.authorization_url(provider, oidc_redirect(request)),
                                status_code=303)

    def oidc_callback(request: Request) -> Response:
        kept = request.session.pop("oidc", None)
        if dash.oidc is None or not isinstance(kept, list) or len(kept) != 3:
            return dash.refuse(request, 400, "No sign-in with the identity provider was "
                                             "started from this browser.")
        params = request.query_params
        try:
            if params.get("error"):
                raise InputError([Problem("error", str(params.get("error"))[:100], "login")])
            user = OidcFlow(*kept).finish(dash.provider(), oidc_redirect(request),
                                          params.get("state", ""), params.get("code", ""))
        except InputError as exc:
            dash.audit(request, "oidc:?", "login", outcome="refused",
                       detail="; ".join(str(p) for p in exc.problems))
            return dash.refuse(request, 401, "Sign-in with the identity provider failed: " +
                               "; ".join(str(p) for p in exc.problems))
        request.session.clear()
        request.session.update(user=user.name, oidc_role=user.role, since=time.time(),
                               csrf=new_csrf())
        dash.audit(request, user.name, "login", detail=f"OIDC, role {user.role}")
        return RedirectResponse("/", status_code=303)

    async def oidc_start_endpoint(request: Request) -> Response:
        return await run_in_threadpool(oidc_start, request)

    async def oidc_callback_endpoint(request: Request) -> Response:
        return await run_in_threadpool(oidc_callback, request)

    @page(dash, action="logout")
    def logout(request: Request, user: User, _form: FormData) -> Response:
        dash.audit(request, user.name, "logout")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @page(dash)
    def overview(request: Request, user: User) -> Response:
        return dash.render(request, "overview.html",
                           data=views.overview(dash.outbox, dash.inbound, days=dash.days))

    @page(dash)
    def queue(request: Request, user: User) -> Response:
        params = dict(request.query_params)
        filters = queue_filters(params)
        total, found = dash.outbox.search(**filters)
        return dash.render(request, "queue.html", items=views.item_rows(dash.outbox, found),
                           total=total, filters=params, states=views.ITEM_STATES,
                           more=_more(params, filters, total), title="Queue")

    @page(dash)
    def item(request: Request, user: User) -> Response:
        found = dash.outbox.get(item_id(request.path_params["id"]))
        if found is None:
            return dash.refuse(request, 404, "No such outbox item.")
        return dash.render(request, "item.html", item=views.item_detail(dash.outbox, found,
                                                                         phi=False))

    @page(dash, role="operator", action="show")
    def item_show(request: Request, user: User, _form: FormData) -> Response:
        found = dash.outbox.get(item_id(request.path_params["id"]))
        if found is None:
            return dash.refuse(request, 404, "No such outbox item.")
        # audited before anything is shown: no trail, no patient data
        dash.audit(request, user.name, "show", entity=(ITEM_ID_SYSTEM, str(found.id)),
                   detail="outbox item: Bundle, errors and OperationOutcome")
        dash.outbox.add_audit(found.id, "AuditEvent", json.dumps(phi_view_event(
            found.id, f"{user.name} (mafhir serve)", time.time())))
        return dash.render(request, "item.html", item=views.item_detail(dash.outbox, found,
                                                                         phi=True),
                           shown=True)

    @page(dash)
    def dead(request: Request, user: User) -> Response:
        params = {**request.query_params, "state": "dead"}
        filters = queue_filters(params)
        total, found = dash.outbox.search(**filters)
        return dash.render(request, "dead.html", items=views.item_rows(dash.outbox, found),
                           total=total, done=request.query_params.get("done"),
                           more=_more(params, filters, total))

    @page(dash, role="operator", action="replay")
    def dead_confirm(request: Request, user: User, form: FormData) -> Response:
        what, ids, reason = _dead_action(form)
        found = views.item_rows(dash.outbox, [i for i in map(dash.outbox.get, ids)
                                              if i is not None and i.state == "dead"])
        if not found:
            raise InputError([Problem("ids", "none of these is a dead letter now",
                                      "not-found")])
        return dash.render(request, "confirm.html", what=what, items=found, reason=reason)

    @page(dash, role="operator", action="replay")
    def dead_apply(request: Request, user: User, form: FormData) -> Response:
        what, ids, reason = _dead_action(form)
        if form.get("confirmed") != "yes":
            raise InputError([Problem("confirmed", "the confirmation page was skipped",
                                      "required")])
        done = 0
        for i in ids:
            n = dash.outbox.replay(i) if what == "replay" else dash.outbox.discard(i, reason)
            dash.audit(request, user.name, what, outcome="ok" if n else "refused",
                       entity=(ITEM_ID_SYSTEM, str(i)),
                       detail=None if n else "not a dead letter (any more)")
            done += n
        return RedirectResponse(f"/dead?{urlencode({'done': f'{what}: {done}'})}",
                                status_code=303)

    @page(dash)
    def inbound(request: Request, user: User) -> Response:
        if dash.inbound is None:
            return dash.refuse(request, 404, "No inbound message store: start mafhir serve "
                                             "with --inbound (the listener's --store).")
        params = dict(request.query_params)
        filters = inbound_filters(params)
        total, found = dash.inbound.search(**filters)
        return dash.render(request, "inbound.html",
                           messages=[views.message_row(m) for m in found], total=total,
                           filters=params, more=_more(params, filters, total),
                           done=request.query_params.get("done"))

    @page(dash)
    def message(request: Request, user: User) -> Response:
        if dash.inbound is None:
            return dash.refuse(request, 404, "No inbound message store.")
        found = dash.inbound.get(item_id(request.path_params["id"]))
        if found is None:
            return dash.refuse(request, 404, "No such message.")
        return dash.render(request, "message.html", m=views.message_detail(found, phi=False),
                           listener=dash.config.listener is not None)

    @page(dash, role="operator", action="show")
    def message_show(request: Request, user: User, _form: FormData) -> Response:
        found = dash.inbound.get(item_id(request.path_params["id"])) if dash.inbound else None
        if found is None:
            return dash.refuse(request, 404, "No such message.")
        dash.audit(request, user.name, "show", entity=(MESSAGE_SYSTEM, str(found.id)),
                   detail="inbound message: raw bytes, ACKs, problems")
        return dash.render(request, "message.html", m=views.message_detail(found, phi=True),
                           listener=dash.config.listener is not None, shown=True)

    @page(dash, role="operator", action="reprocess")
    def message_reprocess(request: Request, user: User, _form: FormData) -> Response:
        store = dash.inbound
        found = store.get(item_id(request.path_params["id"])) if store else None
        if store is None or found is None:
            return dash.refuse(request, 404, "No such message.")
        if not store.mark_for_reprocessing(found.id):
            dash.audit(request, user.name, "reprocess", outcome="refused",
                       entity=(MESSAGE_SYSTEM, str(found.id)), detail=f"status {found.status}")
            raise InputError([Problem("id", f"a {found.status} message is not reprocessed "
                                            "(only error, review or retry ones with a "
                                            "control id)", "conflict")])
        dash.audit(request, user.name, "reprocess", entity=(MESSAGE_SYSTEM, str(found.id)))
        note = "marked for reprocessing: processed again when its sender re-sends it"
        if dash.config.listener is not None:
            host, port = dash.config.listener
            try:
                with MLLPClient(host, port, timeout=30.0, retries=0) as client:
                    client.send(found.raw)
                after = store.get(found.id)
                note = f"reprocessed by the listener: now {after.status if after else '?'}"
            except OSError as exc:
                note = (f"marked for reprocessing; the listener at {host}:{port} could not "
                        f"be reached ({type(exc).__name__}): processed when the message "
                        f"arrives again")
        return RedirectResponse(f"/inbound?{urlencode({'done': f'{found.id}: {note}'})}",
                                status_code=303)

    @page(dash)
    def panel(request: Request, user: User) -> Response:
        found = dash.panels.get(request.path_params["name"])
        if found is None:
            return dash.refuse(request, 404, "No such page.")
        return dash.render(request, "panel.html", panel=found, rows=list(found.rows()))

    @page(dash, role="admin")
    def users(request: Request, user: User) -> Response:
        return dash.render(request, "users.html", users=dash.web.users(), now=time.time(),
                           done=request.query_params.get("done"))

    @page(dash, role="admin", action="user-add")
    def users_add(request: Request, user: User, form: FormData) -> Response:
        name = str(form.get("name") or "")
        added = dash.web.add_user(name, str(form.get("role") or ""),
                                  str(form.get("password") or ""))
        dash.audit(request, user.name, "user-add", entity=(_USER_SYSTEM, added.name),
                   detail=f"role {added.role}")
        return RedirectResponse(f"/admin/users?{urlencode({'done': f'{added.name} saved'})}",
                                status_code=303)

    @page(dash, role="admin", action="user-add")
    def users_unlock(request: Request, user: User, form: FormData) -> Response:
        name = str(form.get("name") or "")
        if not dash.web.unlock(name):
            raise InputError([Problem("name", "no such user", "not-found")])
        dash.audit(request, user.name, "user-add", entity=(_USER_SYSTEM, name),
                   detail="unlocked")
        return RedirectResponse(f"/admin/users?{urlencode({'done': f'{name} unlocked'})}",
                                status_code=303)

    @page(dash, role="admin", action="user-remove")
    def users_remove(request: Request, user: User, form: FormData) -> Response:
        name = str(form.get("name") or "")
        if name == user.name:
            raise InputError([Problem("name", "you cannot remove yourself", "conflict")])
        if not dash.web.remove_user(name):
            raise InputError([Problem("name", "no such user", "not-found")])
        dash.audit(request, user.name, "user-remove", entity=(_USER_SYSTEM, name),
                   detail="removed with their API tokens")
        return RedirectResponse(f"/admin/users?{urlencode({'done': f'{name} removed'})}",
                                status_code=303)

    @page(dash, role="admin")
    def audit_trail(request: Request, user: User) -> Response:
        return dash.render(request, "audit.html", events=dash.web.events(200))

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/login/oidc", oidc_start_endpoint, methods=["GET"]),
        Route("/login/oidc/callback", oidc_callback_endpoint, methods=["GET"],
              name="oidc_callback"),
        Route("/logout", logout, methods=["POST"]),
        Route("/", overview, methods=["GET"]),
        Route("/queue", queue, methods=["GET"]),
        Route("/items/{id}", item, methods=["GET"]),
        Route("/items/{id}/show", item_show, methods=["POST"]),
        Route("/dead", dead, methods=["GET"]),
        Route("/dead/confirm", dead_confirm, methods=["POST"]),
        Route("/dead/apply", dead_apply, methods=["POST"]),
        Route("/inbound", inbound, methods=["GET"]),
        Route("/inbound/{id}", message, methods=["GET"]),
        Route("/inbound/{id}/show", message_show, methods=["POST"]),
        Route("/inbound/{id}/reprocess", message_reprocess, methods=["POST"]),
        Route("/panels/{name}", panel, methods=["GET"]),
        Route("/admin/users", users, methods=["GET"]),
        Route("/admin/users", users_add, methods=["POST"]),
        Route("/admin/users/unlock", users_unlock, methods=["POST"]),
        Route("/admin/users/remove", users_remove, methods=["POST"]),
        Route("/admin/audit", audit_trail, methods=["GET"]),
    ]


def _dead_action(form: FormData) -> tuple[str, list[int], str]:
    """(replay | discard, the item ids, the reason) from a dead-letter form."""
    what = str(form.get("what") or "")
    problems = []
    if what not in ("replay", "discard"):
        problems.append(Problem("what", "replay or discard", "code-invalid"))
    raw_ids = [str(v) for v in form.getlist("ids")]
    if not raw_ids:
        problems.append(Problem("ids", "select at least one dead letter", "required"))
    if len(raw_ids) > 500:
        problems.append(Problem("ids", "at most 500 at once", "value"))
    reason = str(form.get("reason") or "").strip()
    if what == "discard" and not reason:
        problems.append(Problem("reason", "a discard needs the reason (kept with the item)",
                                "required"))
    if len(reason) > 1000:
        problems.append(Problem("reason", "at most 1000 characters", "value"))
    if problems:
        raise InputError(problems)
    return what, sorted({item_id(i, "ids") for i in raw_ids}), reason


def _more(params: dict[str, Any], filters: dict[str, Any], total: int) -> dict[str, str]:
    """Query strings of the previous and next pages (empty when there is none)."""
    out = {}
    limit, offset = filters["limit"], filters["offset"]
    if offset > 0:
        out["prev"] = urlencode({**params, "offset": max(0, offset - limit)})
    if offset + limit < total:
        out["next"] = urlencode({**params, "offset": offset + limit})
    return out

