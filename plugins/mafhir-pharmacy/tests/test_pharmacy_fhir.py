"""The FHIR pharmacy interface against SEKMET with its pharmacy simulator on: a
prescription posted comes back dispensed (a MedicationDispense SEKMET writes itself), a
refill request lands on the worklist, is decided, and the renewal is dispensed too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers_pharmacy import clinic, mapped, prescription, refill_request

from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.testing import FhirServer, ServerUnavailable, start_fhir_server
from mafhir.validation.validator import check_resource
from mafhir_pharmacy.channels import FhirPharmacy, _dispense_state
from mafhir_pharmacy.mappers import AlreadyAnswered
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.worklist import LocalWorklist

WAIT = 30.0  # seconds; the simulator acts after FHIR_SIMULATOR_DELAY (0.3 s here)


@pytest.fixture(scope="module")
def pharmacy_server() -> Iterator[FhirServer]:
    """A SEKMET of this module's own with the filler simulator on."""
    saved = {k: os.environ.get(k) for k in ("FHIR_SIMULATOR", "FHIR_SIMULATOR_DELAY")}
    os.environ.update({"FHIR_SIMULATOR": "true", "FHIR_SIMULATOR_DELAY": "0.3"})
    try:
        server = start_fhir_server()
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no FHIR test server: {exc}", pytrace=False)
        pytest.skip(f"no FHIR test server: {exc}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield server
    server.stop()


def one(found):
    found = list(found)
    assert len(found) == 1, found
    return found[0]


def read_set(pharmacy: FhirPharmacy, resource: dict) -> ResourceSet:
    """The resource and what it references directly, read from the server."""
    out = [resource]
    for key in ("for", "owner", "requester", "focus", "subject"):
        ref = (resource.get(key) or {}).get("reference", "")
        if "/" in ref and "?" not in ref:
            rtype, rid = ref.split("/")[-2:]
            out.append(pharmacy.client.read(rtype, rid)[0])
    return ResourceSet.of(out)


def test_prescription_reaches_the_pharmacy_and_comes_back_dispensed(pharmacy_server):
    c = clinic()
    (result,) = mapped([prescription()], c)
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    pharmacy.send(transaction(result.entries))
    stored = one(pharmacy.search("MedicationRequest",
                                 {"identifier": f"{c.system}/prescription|rx-5001"}))
    # what the server holds is still valid US Core (its references now Type/id)
    assert not [i for i in check_resource(stored, get_registry().profiles)
                if i.severity == "error"]
    status = pharmacy.wait_for_dispense("rx-5001", timeout=WAIT, interval=0.2)
    assert status.state == "dispensed"
    assert status.prescription == f"MedicationRequest/{stored['id']}"
    md = pharmacy.client.read(*status.dispense.split("/"))[0]
    assert md["authorizingPrescription"] == [{"reference": status.prescription}]
    assert md["quantity"]["value"] == 30
    pharmacy.send(transaction(result.entries))  # a re-send stores no second order
    assert len(list(pharmacy.search("MedicationRequest",
                                    {"identifier": f"{c.system}/prescription|rx-5001"}))) == 1
    pharmacy.close()


def test_refill_request_decided_and_renewal_dispensed(pharmacy_server, tmp_path):
    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    (rx,) = mapped([prescription()], c)
    pharmacy.send(transaction(rx.entries))
    prior = one(pharmacy.search("MedicationRequest",
                                {"identifier": f"{c.system}/prescription|rx-5001"}))

    # the pharmacy's request, in FHIR form: a Task on the prescriber's worklist
    (req,) = mapped([refill_request()], c)
    pharmacy.send(transaction(req.entries))
    task = one(pharmacy.search("Task", {"identifier": f"{c.system}/refill_request|rr-1"}))
    assert task["status"] == "requested"
    assert task["focus"] == {"reference": f"MedicationRequest/{prior['id']}"}

    # onto the MA's worklist as read back from the server, then decided once
    (request,) = get_registry().mapper("refill_request").from_fhir(read_set(pharmacy, task))
    assert request.prescription == "rx-5001"
    worklist = LocalWorklist(tmp_path / "wl.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    worklist.add_request(request)
    decision = worklist.decide("rr-1", "approved",
                               datetime.fromisoformat("2026-12-20T11:30:00-05:00"),
                               "rx-5001-r1", refills=1)
    with pytest.raises(AlreadyAnswered):
        worklist.decide("rr-1", "approved", datetime.now(UTC), "again")
    (answer,) = mapped([decision.model_dump(mode="json", exclude_none=True)], c)
    pharmacy.send(transaction(answer.entries))

    done = one(pharmacy.search("Task", {"identifier": f"{c.system}/refill_request|rr-1"}))
    assert done["id"] == task["id"] and done["status"] == "completed"
    renewal = one(pharmacy.search("MedicationRequest",
                                  {"identifier": f"{c.system}/prescription|rx-5001-r1"}))
    assert renewal["priorPrescription"] == {"reference": f"MedicationRequest/{prior['id']}"}
    assert renewal["dispenseRequest"]["numberOfRepeatsAllowed"] == 1
    assert done["output"][0]["valueReference"] == {"reference":
                                                   f"MedicationRequest/{renewal['id']}"}
    assert pharmacy.wait_for_dispense("rx-5001-r1", timeout=WAIT,
                                      interval=0.2).state == "dispensed"
    worklist.close()
    pharmacy.close()


def test_controlled_substance_is_not_posted(pharmacy_server):
    c = clinic()
    (result,) = mapped([prescription(medication={"rxnorm": "308048"}, dea="AR1234563",
                                     refills=0)], c)
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    with pytest.raises(InputError, match=r"entry\[\d\]: a schedule IV controlled substance"):
        pharmacy.send(transaction(result.entries))
    assert not list(pharmacy.search("MedicationRequest",
                                    {"identifier": f"{c.system}/prescription|rx-5001"}))
    with pytest.raises(InputError, match="no MedicationRequest for prescription 'rx-5001'"):
        pharmacy.follow("rx-5001")
    pharmacy.close()


def test_dispense_states():
    now = datetime(2026, 12, 30, tzinfo=UTC)
    prepared = (now - timedelta(days=20)).isoformat()
    assert _dispense_state({"status": "completed", "whenHandedOver": prepared}, now, 14) == \
        "dispensed"
    assert _dispense_state({"status": "in-progress", "whenPrepared": prepared}, now, 14) == \
        "not-picked-up"  # ready 20 days, never handed over
    assert _dispense_state({"status": "in-progress", "whenPrepared": prepared}, now, 30) == \
        "in-progress"
    assert _dispense_state({"status": "declined", "whenPrepared": prepared}, now, 14) == \
        "not-picked-up"
    assert _dispense_state({"status": "declined"}, now, 14) == "not-dispensed"
