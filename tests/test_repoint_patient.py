"""A patient merge in what mafhir keeps (issue 18): ``LocalStore.repoint_patient`` and
``OutboxStore.repoint_patient``, on SQLite and PostgreSQL. Only the merged-away patient's
resources and pending work move; in-flight items and other patients stay; twice is once."""

from __future__ import annotations

import pytest

from mafhir.connectors.local import LocalStore
from mafhir.errors import InputError
from mafhir.identity import identifier_query
from mafhir.io import dumps, loads
from mafhir.outbox.model import NewItem
from mafhir.outbox.store import open_store

MRN = "urn:test:mrn"
OLD, NEW, OTHER = (MRN, "A-1"), (MRN, "B-2"), (MRN, "C-3")


def patient(mrn: str) -> dict:
    return {"resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
                         "gender": "female"},
            "request": {"method": "PUT", "url": f"Patient?{identifier_query(MRN, mrn)}"}}


def observation(n: int, mrn: str) -> dict:
    return {"resource": {"resourceType": "Observation", "status": "final",
                         "identifier": [{"system": "urn:test:obs", "value": str(n)}],
                         "code": {"text": "HbA1c"},
                         "subject": {"reference": f"Patient?{identifier_query(MRN, mrn)}"}},
            "request": {"method": "PUT",
                        "url": f"Observation?{identifier_query('urn:test:obs', str(n))}"}}


def bundle(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_local_store_moves_the_old_patients_resources_only(store_at):
    store = LocalStore(store_at("store"))
    try:
        store.send(bundle(patient("A-1"), patient("B-2"), patient("C-3"),
                          observation(1, "A-1"), observation(2, "A-1"), observation(3, "C-3")))
        ids = {m: store.find("Patient", MRN, m)["id"] for m in ("A-1", "B-2", "C-3")}
        assert store.repoint_patient(OLD, NEW) == 2
        subjects = {o["identifier"][0]["value"]: o["subject"]["reference"]
                    for o in store.search("Observation")}
        assert subjects == {"1": f"Patient/{ids['B-2']}", "2": f"Patient/{ids['B-2']}",
                            "3": f"Patient/{ids['C-3']}"}
        assert [r["resourceType"] for r in store.search(patient=f"Patient/{ids['A-1']}")] == \
            ["Patient"]
        assert store.repoint_patient(OLD, NEW) == 0  # again: nothing more
        assert len(store.history("Observation", store.find(
            "Observation", "urn:test:obs", "1")["id"])) == 2  # the old version kept
        store.send(bundle(patient("D-4"), observation(4, "D-4")))
        with pytest.raises(InputError, match="surviving patient"):
            store.repoint_patient((MRN, "D-4"), (MRN, "nobody"))
    finally:
        store.close()


def test_outbox_repoints_pending_and_retrying_items_not_inflight(store_at):
    box = open_store(store_at("outbox"))
    try:
        dest = "fhir:https://ehr.example/fhir"
        box.enqueue([NewItem(dest, f"k{n}", f"i{n}", dumps(bundle(observation(n, mrn))))
                     for n, mrn in ((1, "A-1"), (2, "A-1"), (3, "C-3"))])
        (claimed,) = box.claim("w1", limit=1)  # item 1 is in flight with a worker
        assert claimed.idem_key == "i1"
        old_q, new_q = identifier_query(*OLD), identifier_query(*NEW)
        assert box.repoint_patient(old_q, new_q) == 1
        refs = {i.idem_key: loads(i.payload)["entry"][0]["resource"]["subject"]["reference"]
                for i in box.items_in("pending") + box.items_in("inflight")}
        assert refs == {"i1": f"Patient?{old_q}", "i2": f"Patient?{new_q}",
                        "i3": f"Patient?{identifier_query(*OTHER)}"}
        assert box.repoint_patient(old_q, new_q) == 0
    finally:
        box.close()
