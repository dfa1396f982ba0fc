"""The refill worklist as a page of `mafhir serve` (the plugin's register_dashboard_panels):
each request's id, state, prescription and day, never the patient's name, MRN or birth
date; no worklist file, no rows (and none is created)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")

from helpers_pharmacy import prescription, refill_request
from starlette.testclient import TestClient

from mafhir.web.app import WebConfig, create_app
from mafhir.web.webstore import WebStore
from mafhir_pharmacy.tasks import PrescriptionTask, RefillRequestTask
from mafhir_pharmacy.worklist import LocalWorklist, UnknownPrescription

PASSWORD = "correct-horse-battery"


def viewer(tmp_path: Path) -> tuple[TestClient, object]:
    db = str(tmp_path / "outbox.db")
    WebStore(db).add_user("vera", "viewer", PASSWORD)
    app = create_app(WebConfig(db=db))
    client = TestClient(app, base_url="http://127.0.0.1")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "vera", "password": PASSWORD, "csrf": token})
    return client, app


def rows(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", body)]


def test_the_worklist_panel_lists_requests_without_patient_data(tmp_path, monkeypatch):
    path = tmp_path / "worklist.sqlite"
    monkeypatch.setenv("MAFHIR_PHARMACY_WORKLIST", str(path))
    worklist = LocalWorklist(path)
    worklist.add_prescription(PrescriptionTask.model_validate(prescription("rx-5001")))
    worklist.add_request(RefillRequestTask.model_validate(refill_request("rr-1", "rx-5001")))
    with pytest.raises(UnknownPrescription):  # kept for review, not dropped
        worklist.add_request(RefillRequestTask.model_validate(
            refill_request("rr-2", "rx-unknown", received="2026-12-21T09:00:00-05:00")))
    worklist.close()
    client, app = viewer(tmp_path)
    page = client.get("/panels/pharmacy-worklist")
    assert page.status_code == 200
    assert rows(page.text) == [["rr-1", "requested", "rx-5001", "2026-12-20", "–"],
                               ["rr-2", "review", "rx-unknown", "2026-12-21", "–"]]
    # the prescription's patient: Okafor, Grace, MRN MS-10022, born 1968-02-11
    assert [p for p in ("Okafor", "Grace", "MS-10022", "1968-02-11") if p in page.text] == []
    app.state.dashboard.close()


def test_without_a_worklist_file_the_panel_is_empty_and_creates_none(tmp_path, monkeypatch):
    path = tmp_path / "absent.sqlite"
    monkeypatch.setenv("MAFHIR_PHARMACY_WORKLIST", str(path))
    client, app = viewer(tmp_path)
    page = client.get("/panels/pharmacy-worklist")
    assert page.status_code == 200 and "Nothing here." in page.text
    assert not path.exists()
    app.state.dashboard.close()
