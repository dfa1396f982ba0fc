"""The dashboard (mafhir serve) through its real ASGI app and real stores: login,
roles, CSRF, lockout, masking, replay and discard with their audit trail, the users CLI,
the bind guard, and a plugin's panel. The browser tests are in test_web_browser.py."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")

from starlette.testclient import TestClient

from mafhir import plugins
from mafhir.outbox import open_store
from mafhir.web.app import WebConfig, create_app
from mafhir.web.webstore import LOCK_SECONDS, MAX_FAILURES, WebStore
from web_helpers import (
    DEST,
    FAMILY,
    PASSWORD,
    PHI,
    cheap_argon2,  # noqa: F401 - an autouse fixture
    csrf_of,
    seed_inbound,
    seed_outbox,
    sign_in,
)


@pytest.fixture
def site(tmp_path):
    """An outbox with 3 delivered, 1 dead and 1 pending item of one patient, an inbound
    store with a processed and a review message, and a user of each role."""
    db = str(tmp_path / "outbox.db")
    store = open_store(db)
    seeded = seed_outbox(store, tmp_path)
    seed_inbound(tmp_path / "in.sqlite").close()
    users = WebStore(db)
    for role in ("viewer", "operator", "admin"):
        users.add_user(role, role, PASSWORD)
    app = create_app(WebConfig(db=db, inbound=str(tmp_path / "in.sqlite")))
    yield app, store, seeded, users
    app.state.dashboard.close()
    users.close()
    store.close()


def client_for(app, role: str | None = None) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    if role is not None:
        answer = sign_in(client, role)
        assert answer.status_code == 200 and answer.url.path == "/", answer.text
    return client


def cells(html: str, row_attr: str, key: str) -> dict[str, str]:
    """The ``data-col`` cells of the table row ``data-<row_attr>="key"``."""
    row = re.search(rf'<tr data-{row_attr}="{re.escape(key)}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {key}"
    return {c: re.sub(r"<[^>]+>", "", v).strip()
            for c, v in re.findall(r'data-col="(\w+)">(.*?)</td>', row.group(1), re.S)}


def audit(users: WebStore, action: str) -> list[dict]:
    return [e for e in users.events() if e["subtype"][0]["code"] == action]


# ---------------------------------------------------------------------- login
def test_no_page_and_no_api_answer_without_login(site):
    app, *_ = site
    client = client_for(app)
    for path in ("/", "/queue", "/dead", "/items/1", "/inbound", "/admin/users",
                 "/panels/anything"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith(
            "/login"), path
    for path in ("/api/status", "/api/items", "/api/dead-letters", "/api/items/1"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"]["problems"][0]["location"] == "Authorization"
    assert client.post("/dead/apply", data={}).status_code == 401


def test_a_wrong_password_is_refused_and_audited(site):
    app, _, _, users = site
    client = client_for(app)
    answer = sign_in(client, "operator", "not-the-password")
    assert answer.status_code == 401 and "Wrong name or password" in answer.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out
    unknown = sign_in(client, "nobody", PASSWORD)
    assert unknown.status_code == 401 and "Wrong name or password" in unknown.text
    refused = audit(users, "login")
    assert [(e["agent"][0]["who"]["display"], e["outcome"]) for e in refused] == [
        ("nobody", "4"), ("operator", "4")]


def test_an_account_locks_after_repeated_failures_and_an_admin_unlocks_it(site):
    app, _, _, users = site
    client = client_for(app)
    for _ in range(MAX_FAILURES - 1):
        assert sign_in(client, "viewer", "guess-guess-guess").status_code == 401
    locked = sign_in(client, "viewer", "guess-guess-guess")
    assert locked.status_code == 401 and "locked" in locked.text
    # the right password is refused too while the lock lasts
    assert "locked" in sign_in(client, "viewer").text
    assert users.login("viewer", PASSWORD).result == "locked"
    assert users.login("viewer", PASSWORD, now=__import__("time").time() + LOCK_SECONDS + 1
                       ).result == "ok"
    admin = client_for(app, "admin")
    page = admin.get("/admin/users")
    answer = admin.post("/admin/users/unlock", data={"name": "viewer",
                                                     "csrf": csrf_of(page.text)})
    assert answer.status_code == 200 and "viewer unlocked" in answer.text
    assert sign_in(client_for(app), "viewer").status_code == 200


def test_logins_from_one_address_are_throttled(site):
    app, *_ = site
    client = client_for(app)
    app.state.dashboard.throttle.limit = 3
    for name in ("a1", "a2", "a3"):  # unknown names: no account lock involved
        assert sign_in(client, name, "x").status_code == 401
    assert sign_in(client, "operator").status_code == 429


def test_the_session_cookie_is_httponly_samesite_strict_and_secure_over_tls(tmp_path):
    for https in (False, True):
        db = str(tmp_path / f"o{https}.db")
        WebStore(db).add_user("viewer", "viewer", PASSWORD)
        app = create_app(WebConfig(db=db, https=https))
        client = TestClient(app, base_url="https://127.0.0.1" if https else "http://127.0.0.1")
        page = client.get("/login")
        answer = client.post("/login", data={"username": "viewer", "password": PASSWORD,
                                             "csrf": csrf_of(page.text)},
                             follow_redirects=False)
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ("secure" in cookie.split(";")[-1] or "; secure" in cookie) is https
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        app.state.dashboard.close()


def test_a_login_form_without_its_csrf_token_is_refused(site):
    app, *_ = site
    client = client_for(app)
    client.get("/login")
    answer = client.post("/login", data={"username": "operator", "password": PASSWORD})
    assert answer.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


# ---------------------------------------------------------------------- what is shown
def test_the_overview_counts_match_the_store(site):
    app, store, _, _ = site
    html = client_for(app, "viewer").get("/").text
    assert cells(html, "destination", DEST) == {
        "sent": "3", "pending": "1", "retrying": "0", "dead": "1", "discarded": "0"}
    assert store.counts() == {DEST: {"delivered": 3, "dead": 1, "pending": 1}}
    assert cells(html, "sender", "LABSYS|REFLAB") == {
        "received": "2", "processed": "1", "errors": "0", "review": "1", "retry": "0",
        "replies_pending": "0"}
    # the last hour's chart says 3 delivered
    assert 'aria-label="delivered in the last hour: 3"' in html


def test_the_queue_filters_by_state_kind_patient_key_and_time(site):
    app, store, seeded, _ = site
    client = client_for(app, "viewer")

    def ids(query: str) -> list[int]:
        answer = client.get(f"/queue?{query}")
        assert answer.status_code == 200, answer.text
        return [int(i) for i in re.findall(r'<tr data-item="(\d+)">', answer.text)]

    every = sorted(seeded.delivered + seeded.dead + seeded.pending, reverse=True)
    assert ids("") == every
    assert ids("state=delivered") == sorted(seeded.delivered, reverse=True)
    assert ids("state=dead") == seeded.dead
    assert ids("kind=vitals") == every and ids("kind=immunization") == []
    key = store.get(seeded.dead[0]).okey
    assert ids(f"patient_key={key}") == every and ids("patient_key=abc") == []
    assert ids("since=2000-01-01") == every and ids("until=2000-01-01") == []
    assert ids("limit=2") == every[:2] and ids("limit=2&offset=2") == every[2:4]
    bad = client.get("/queue?state=lost&since=yesterday")
    assert bad.status_code == 400
    assert "state: one of pending" in bad.text and "since: not an ISO 8601" in bad.text


def test_masked_pages_carry_no_patient_data_and_show_is_audited(site):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    for role in ("viewer", "operator", "admin"):
        client = client_for(app, role)
        for path in ("/", "/queue", "/dead", f"/items/{dead}", f"/items/{seeded.pending[0]}",
                     "/inbound", "/inbound/1", "/inbound/2", "/inbound?status=review"):
            answer = client.get(path)
            assert answer.status_code == 200, (role, path)
            found = [p for p in PHI if p.lower() in answer.text.lower()]
            assert found == [], (role, path, found)
    # the item page still says what kind of failure it was
    page = client_for(app, "viewer").get(f"/items/{dead}").text
    assert "business-rule (HTTP 422)" in page and "Show the Bundle" not in page
    viewer = client_for(app, "viewer")
    refused = viewer.post(f"/items/{dead}/show", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403 and FAMILY not in refused.text
    # an operator's explicit "show" reveals it, and is audited first
    operator = client_for(app, "operator")
    page = operator.get(f"/items/{dead}").text
    shown = operator.post(f"/items/{dead}/show", data={"csrf": csrf_of(page)})
    assert shown.status_code == 200 and FAMILY in shown.text
    (event,) = [e for e in audit(users, "show") if e["outcome"] == "0"]
    assert event["agent"][0]["who"]["display"] == "operator"
    assert event["entity"][0]["what"]["identifier"]["value"] == str(dead)
    assert event["action"] == "R" and event["type"]["code"] == "110110"
    assert [e["resourceType"] for e in (json.loads(a["resource"])
                                        for a in store.audit_of(dead))] == ["AuditEvent"]
    raw = operator.post("/inbound/2/show", data={"csrf": csrf_of(page)})
    assert raw.status_code == 200 and "PID|1||MRN778812" in raw.text


def test_the_api_answers_carry_no_patient_data(site):
    app, _, seeded, users = site
    token = users.new_token("viewer")
    client = client_for(app)
    headers = {"Authorization": f"Bearer {token}"}
    for path in ("/api/status", "/api/items", "/api/dead-letters",
                 f"/api/items/{seeded.dead[0]}"):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, path
        assert [p for p in PHI if p in answer.text] == [], path
    status = client.get("/api/status", headers=headers).json()
    (dest,) = status["destinations"]
    assert (dest["sent"], dest["pending"], dest["dead"]) == (3, 1, 1)
    assert client.get("/api/status", headers={"Authorization": "Bearer mfh_wrong"}
                      ).status_code == 401


# ---------------------------------------------------------------------- actions
def test_replay_needs_the_confirmation_page_and_is_audited(site):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    client = client_for(app, "operator")
    page = client.get("/dead")
    confirm = client.post("/dead/confirm", data={"csrf": csrf_of(page.text), "what": "replay",
                                                 "ids": [str(dead)]})
    assert confirm.status_code == 200 and "Replay 1 dead letter(s)?" in confirm.text
    assert store.get(dead).state == "dead"  # nothing happened yet
    skipped = client.post("/dead/apply", data={"csrf": csrf_of(page.text), "what": "replay",
                                               "ids": [str(dead)]})
    assert skipped.status_code == 400 and store.get(dead).state == "dead"
    done = client.post("/dead/apply", data={"csrf": csrf_of(confirm.text), "what": "replay",
                                            "ids": [str(dead)], "confirmed": "yes"})
    assert done.status_code == 200 and "replay: 1" in done.text
    assert store.get(dead).state == "pending"
    (event,) = audit(users, "replay")
    assert event["agent"][0]["who"]["display"] == "operator" and event["outcome"] == "0"
    assert event["entity"][0]["what"]["identifier"]["value"] == str(dead)


def test_discard_needs_a_reason_which_is_kept(site):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    client = client_for(app, "operator")
    token = csrf_of(client.get("/dead").text)
    form = {"csrf": token, "what": "discard", "ids": [str(dead)], "confirmed": "yes"}
    refused = client.post("/dead/apply", data=form)
    assert refused.status_code == 400 and "reason: a discard needs the reason" in refused.text
    done = client.post("/dead/apply", data={**form, "reason": "entered twice"})
    assert done.status_code == 200
    kept = store.get(dead)
    assert (kept.state, kept.reason) == ("discarded", "entered twice")
    assert [e["outcome"] for e in audit(users, "discard")] == ["0"]


def test_a_viewer_cannot_replay_and_the_refusal_is_audited(site):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    client = client_for(app, "viewer")
    page = client.get("/dead").text
    assert 'id="replay-selected"' not in page
    answer = client.post("/dead/apply", data={"csrf": csrf_of(page), "what": "replay",
                                              "ids": [str(dead)], "confirmed": "yes"})
    assert answer.status_code == 403 and "operator role" in answer.text
    assert store.get(dead).state == "dead"
    (event,) = audit(users, "replay")
    assert (event["outcome"], event["agent"][0]["who"]["display"]) == ("4", "viewer")


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_an_action_without_the_right_csrf_token_is_refused(site, token):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    client = client_for(app, "operator")
    form = {"what": "replay", "ids": [str(dead)], "confirmed": "yes"}
    if token is not None:
        form["csrf"] = token
    for path in ("/dead/confirm", "/dead/apply", f"/items/{dead}/show", "/logout"):
        answer = client.post(path, data=form)
        assert answer.status_code == 403, path
        assert "security token" in answer.text
    assert store.get(dead).state == "dead"
    assert client.get("/").status_code == 200  # the refused logout did not sign out
    assert all(e["outcome"] == "4" for e in users.events() if e["subtype"][0]["code"]
               != "login")


def test_api_replay_and_discard_need_an_operator_token(site):
    app, store, seeded, users = site
    dead = seeded.dead[0]
    client = client_for(app)
    viewer = {"Authorization": f"Bearer {users.new_token('viewer')}"}
    operator = {"Authorization": f"Bearer {users.new_token('operator')}"}
    assert client.post(f"/api/dead-letters/{dead}/replay", headers=viewer).status_code == 403
    answer = client.post(f"/api/dead-letters/{dead}/discard", headers=operator, json={})
    assert answer.status_code == 400
    assert answer.json()["error"]["problems"][0]["location"] == "reason"
    answer = client.post(f"/api/dead-letters/{dead}/replay", headers=operator)
    assert answer.json() == {"id": dead, "done": "replay"}
    assert store.get(dead).state == "pending"
    again = client.post(f"/api/dead-letters/{dead}/replay", headers=operator)
    assert again.status_code == 409
    assert [e["outcome"] for e in audit(users, "replay")] == ["4", "0"]


def test_an_admin_adds_a_user_through_the_page(site):
    app, _, _, users = site
    admin = client_for(app, "admin")
    page = admin.get("/admin/users").text
    short = admin.post("/admin/users", data={"csrf": csrf_of(page), "name": "dana",
                                             "role": "viewer", "password": "short"})
    assert short.status_code == 400 and "password: at least 10" in short.text
    made = admin.post("/admin/users", data={"csrf": csrf_of(page), "name": "dana",
                                            "role": "viewer", "password": PASSWORD})
    assert made.status_code == 200 and users.user("dana").role == "viewer"
    assert client_for(app, "operator").get("/admin/users").status_code == 403
    assert audit(users, "user-add")[0]["entity"][0]["what"]["identifier"]["value"] == "dana"


# ---------------------------------------------------------------------- plugins' panels
def test_hook_register_dashboard_panels(tmp_path):
    from test_plugins import load_example

    plugins.reset()
    try:
        plugins.register(load_example("register_dashboard_panels"), name="calls")
        db = str(tmp_path / "o.db")
        WebStore(db).add_user("viewer", "viewer", PASSWORD)
        app = create_app(WebConfig(db=db))
        client = client_for(app, "viewer")
        assert '<a href="/panels/calls">Call list</a>' in client.get("/").text
        page = client.get("/panels/calls").text
        rows = re.findall(r"<tr>(<td>.*?)</tr>", page)
        assert rows == ["<td>call-1</td><td>to do</td><td>2026-12-03</td>",
                        "<td>call-2</td><td>done</td><td>2026-12-02</td>"]
        assert client.get("/panels/nothing").status_code == 404
        app.state.dashboard.close()
    finally:
        plugins.reset()


# ---------------------------------------------------------------------- inbound
def test_reprocess_sends_the_message_to_the_listener_again(tmp_path):
    """A message the listener's handler refused (error) is reprocessed over real MLLP once
    the cause is fixed: the listener's own store records the new outcome and ACK."""
    from mafhir.hl7v2.listener import MLLPListener
    from mafhir.hl7v2.receiver import Outcome, Receiver
    from mafhir.hl7v2.store import MessageStore
    from web_helpers import v2_message

    store = MessageStore(tmp_path / "in.sqlite")
    fixed = {"yes": False}

    def handler(_msg):
        if fixed["yes"]:
            return Outcome("processed")
        from mafhir.errors import Problem

        return Outcome("error", (Problem("OBR-4", "unknown test code", "code-invalid"),))

    listener = MLLPListener("127.0.0.1", 0, Receiver(store, handler)).start()
    try:
        from mafhir.hl7v2.mllp import MLLPClient

        with MLLPClient(*listener.address) as client:
            client.send(v2_message("R1"))
        (row,) = list(store.messages())
        assert (row.status, views_ack(row.ack)) == ("error", "AE")
        db = str(tmp_path / "o.db")
        users = WebStore(db)
        users.add_user("operator", "operator", PASSWORD)
        app = create_app(WebConfig(db=db, inbound=str(tmp_path / "in.sqlite"),
                                   listener=listener.address))
        client = client_for(app, "operator")
        page = client.get(f"/inbound/{row.id}").text
        fixed["yes"] = True
        done = client.post(f"/inbound/{row.id}/reprocess", data={"csrf": csrf_of(page)})
        assert done.status_code == 200 and "reprocessed by the listener: now processed" in \
            done.text
        after = store.get(row.id)
        assert (after.status, views_ack(after.ack)) == ("processed", "AA")
        (event,) = audit(users, "reprocess")
        assert event["entity"][0]["what"]["identifier"]["value"] == str(row.id)
        # a processed message is not reprocessed: refused, named, audited
        again = client.post(f"/inbound/{row.id}/reprocess", data={"csrf": csrf_of(page)})
        assert again.status_code == 400 and "a processed message is not reprocessed" in \
            again.text
        app.state.dashboard.close()
        users.close()
    finally:
        listener.stop()
        store.close()


def views_ack(ack: bytes | None) -> str | None:
    from mafhir.hl7v2.ack import read_ack

    return read_ack(ack).code if ack else None


# ---------------------------------------------------------------------- command line
def test_users_commands_add_token_list_and_refuse_a_short_password(tmp_path, monkeypatch):
    from mafhir.cli.main import build_cli

    db = str(tmp_path / "o.db")
    runner = CliRunner()
    monkeypatch.setenv("MAFHIR_USER_PASSWORD", "short")
    short = runner.invoke(build_cli(), ["users", "add", "eve", "--role", "viewer", "--db", db])
    assert short.exit_code == 2 and "password: at least 10 characters" in short.output
    monkeypatch.setenv("MAFHIR_USER_PASSWORD", PASSWORD)
    added = runner.invoke(build_cli(), ["users", "add", "eve", "--role", "operator",
                                        "--db", db])
    assert added.exit_code == 0, added.output
    token = runner.invoke(build_cli(), ["users", "token", "eve", "--db", db])
    assert token.exit_code == 0 and token.stdout.startswith("mfh_")  # stderr: its expiry
    listed = runner.invoke(build_cli(), ["users", "list", "--db", db])
    assert listed.output == "eve\toperator\n"
    store = WebStore(db)
    assert store.token_user(token.stdout.strip()).role == "operator"
    assert token.stdout.strip() not in (tmp_path / "o.db").read_bytes().decode("latin-1")
    assert [e["subtype"][0]["code"] for e in store.events()] == ["token-add", "user-add"]
    store.close()
    unknown = runner.invoke(build_cli(), ["users", "token", "nobody", "--db", db])
    assert unknown.exit_code == 2 and "no such user" in unknown.output


@pytest.mark.parametrize(("args", "refused"), [
    (["--host", "0.0.0.0"], "needs TLS"),
    (["--host", "192.168.1.20", "--tls-cert", "{cert}"], "go together"),
])
def test_serve_refuses_another_address_without_tls(tmp_path, args, refused):
    from mafhir.cli.main import build_cli

    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    args = [a.replace("{cert}", str(cert)) for a in args]
    result = CliRunner().invoke(build_cli(), ["serve", "--db", str(tmp_path / "o.db"), *args])
    assert result.exit_code == 2 and refused in result.output


def test_the_bind_guard_allows_loopback_tls_or_an_explicit_insecure_http():
    from mafhir.web.cli import check_bind
    from mafhir.web.security import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.1", "example.org", "::")))
    check_bind("127.0.0.1", None, None, False)
    check_bind("0.0.0.0", "c.pem", "k.pem", False)
    check_bind("0.0.0.0", None, None, True)
    with pytest.raises(SystemExit):
        check_bind("0.0.0.0", None, None, False)


def test_a_removed_user_is_signed_out_at_once_and_their_tokens_stop_working(site):
    app, _, _, users = site
    token = users.new_token("operator")
    operator = client_for(app, "operator")
    assert operator.get("/").status_code == 200
    admin = client_for(app, "admin")
    page = admin.get("/admin/users").text
    assert admin.post("/admin/users/remove", data={"csrf": csrf_of(page), "name": "admin"}
                      ).status_code == 400  # not oneself
    done = admin.post("/admin/users/remove", data={"csrf": csrf_of(page), "name": "operator"})
    assert done.status_code == 200 and "operator removed" in done.text
    assert operator.get("/", follow_redirects=False).status_code == 303
    assert client_for(app).get("/api/status", headers={"Authorization": f"Bearer {token}"}
                               ).status_code == 401
    (event,) = audit(users, "user-remove")
    assert event["action"] == "D"
    assert event["entity"][0]["what"]["identifier"]["value"] == "operator"
