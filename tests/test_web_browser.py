"""The dashboard in a real browser: Debian's chromium driven by Playwright (headless),
against `mafhir serve`'s app under uvicorn on a loopback port, over an outbox whose dead
letter came from the real FHIR test server (behind the fault proxy) and is replayed to it.

Skips with the reason on a machine without Playwright or chromium; fails under CI=true.
Screenshots of the overview and of the dead letter go to test-artifacts/dashboard/
(git-ignored), or $MAFHIR_TEST_ARTIFACTS.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mafhir.outbox import Engine, Enqueuer, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.plugins import get_registry
from mafhir.testing import Fault
from mafhir.testing.plugin import skip_or_fail
from outbox_helpers import clinic_ctx, server_identifiers, write_ndjson
from web_helpers import PASSWORD, PHI, cheap_argon2, phi_task  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MAFHIR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def artifacts() -> Path:
    where = Path(os.environ.get("MAFHIR_TEST_ARTIFACTS") or ROOT / "test-artifacts") / "dashboard"
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def chromium():
    """A headless chromium (Debian's, no browser download) under Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright is not installed (pip install 'mafhir[test]')")
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no chromium at {CHROMIUM} (apt-get install chromium, or set "
                     "MAFHIR_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])  # root in CI: no user namespace
        yield browser
        browser.close()


def serve(app) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, as `mafhir serve` runs it."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def engine(store) -> Engine:
    return Engine(store, retry=RetryPolicy(max_attempts=3, base=0.02, cap=0.1), poll=0.05,
                  rng=random.Random(3))


@pytest.fixture
def site(tmp_path, fault_proxy):
    """Two patients' vitals for the FHIR server: one delivered, one refused (400) and
    dead-lettered; an operator and a viewer; the dashboard served on loopback."""
    from mafhir.web.app import WebConfig, create_app
    from mafhir.web.webstore import WebStore

    db = str(tmp_path / "outbox.db")
    store = open_store(db)
    ctx = clinic_ctx()
    dest = resolve_destination(fault_proxy.base_url)
    tasks = [phi_task(0), {**phi_task(1), "patient": {"mrn": "OTHER-1", "family": "Other",
                                                      "given": ["Pat"], "gender": "male",
                                                      "birth_date": "1990-01-01"}}]
    Enqueuer(store, dest, get_registry(), ctx).add_file(write_ndjson(tmp_path / "in.ndjson",
                                                                     tasks))
    fault_proxy.add(Fault.status_code(400), method="POST")
    tally = engine(store).run(once=True)
    assert (tally.sent, tally.dead) == (1, 1)
    users = WebStore(db)
    users.add_user("olga", "operator", PASSWORD)
    users.add_user("vic", "viewer", PASSWORD)
    app = create_app(WebConfig(db=db))
    for base in serve(app):
        yield base, store, dest, ctx, fault_proxy
    app.state.dashboard.close()
    users.close()
    store.close()


def sign_in(page, base: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_sign_in_see_the_counts_open_a_dead_letter_replay_it_and_see_it_delivered(
        chromium, site):
    base, store, dest, ctx, proxy = site
    context = chromium.new_context()
    page = context.new_page()
    sign_in(page, base, "olga", "not-her-password")
    assert page.inner_text("#login-error") == "Wrong name or password."
    sign_in(page, base, "olga")
    assert page.inner_text("#who") == "olga (operator)"
    # the overview's counts are the store's
    row = page.locator(f'tr[data-destination="{dest}"]')
    shown = {c: row.locator(f'td[data-col="{c}"]').inner_text() for c in
             ("sent", "pending", "retrying", "dead")}
    assert shown == {"sent": "1", "pending": "0", "retrying": "0", "dead": "1"}
    assert store.counts() == {dest: {"delivered": 1, "dead": 1}}
    html = page.content()
    assert [p for p in PHI if p in html] == []
    page.screenshot(path=str(artifacts() / "overview.png"), full_page=True)
    # open the dead letter from the overview
    row.locator('td[data-col="dead"] a').click()
    (dead,) = store.items_in("dead")
    page.click(f'tr[data-item="{dead.id}"] a')
    assert page.inner_text("#state") == "dead"
    assert page.inner_text("#error-code") == "processing (HTTP 400)"
    assert [p for p in PHI if p in page.content()] == []
    page.screenshot(path=str(artifacts() / "dead-letter.png"), full_page=True)
    # replay: a confirmation first, then the item is back in line
    page.click("#replay")
    assert page.inner_text("h1") == "Replay 1 dead letter(s)?"
    assert store.get(dead.id).state == "dead"
    page.click("#confirm")
    assert page.inner_text("#done") == "replay: 1"
    assert store.get(dead.id).state == "pending"
    # a worker delivers it to the real server; the page shows it delivered
    assert engine(store).run(once=True).sent == 1
    page.goto(f"{base}/items/{dead.id}")
    assert page.inner_text("#state") == "delivered"
    assert len(server_identifiers(proxy.upstream, "Observation", ctx.clinic.system)) == 2
    context.close()


def test_a_viewer_cannot_replay_and_a_form_without_its_csrf_token_is_refused(chromium, site):
    base, store, *_ = site
    (dead,) = store.items_in("dead")
    viewer = chromium.new_context()
    page = viewer.new_page()
    sign_in(page, base, "vic")
    assert page.inner_text("#who") == "vic (viewer)"
    page.goto(f"{base}/items/{dead.id}")
    assert page.locator("#replay").count() == 0 and page.locator("#show").count() == 0
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    # even with a valid token, the viewer's own session cannot replay
    answer = page.request.post(f"{base}/dead/apply", form={
        "csrf": token, "what": "replay", "ids": str(dead.id), "confirmed": "yes"})
    assert answer.status == 403 and "operator role" in answer.text()
    viewer.close()
    operator = chromium.new_context()
    page = operator.new_page()
    sign_in(page, base, "olga")
    answer = page.request.post(f"{base}/dead/apply", form={
        "what": "replay", "ids": str(dead.id), "confirmed": "yes"})
    assert answer.status == 403 and "security token" in answer.text()
    assert store.get(dead.id).state == "dead"
    # the refusal is what the operator's browser shows too: a page, not a crash
    page.goto(f"{base}/dead")
    assert re.search(r"1 in all", page.inner_text(".pages"))
    operator.close()
