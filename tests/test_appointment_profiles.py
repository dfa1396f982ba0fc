"""The rules of validation/profiles/encounter.py catch broken resources at the right path.

Each case starts from a resource that passes (a FHIR R4 / US Core example from the corpus,
or a hand-written minimal one) and breaks one thing.
"""

from __future__ import annotations

import copy
import json
import tarfile

import pytest

from conftest import load_json
from mafhir.validation.validator import check_definitions, check_resource

US_CORE_ENCOUNTER = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"
APPOINTMENT = "http://hl7.org/fhir/StructureDefinition/Appointment"

ENCOUNTER = {
    "resourceType": "Encounter",
    "meta": {"profile": [US_CORE_ENCOUNTER]},
    "identifier": [{"system": "https://clinic.example.org/id/encounter", "value": "appt-1"}],
    "status": "finished",
    "statusHistory": [{"status": "arrived", "period": {"start": "2026-03-04T08:52:00-05:00",
                                                       "end": "2026-03-04T09:05:00-05:00"}}],
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "type": [{"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}],
    "subject": {"reference": "Patient/example"},
    "period": {"start": "2026-03-04T08:52:00-05:00", "end": "2026-03-04T09:40:00-05:00"},
}

APPT = {
    "resourceType": "Appointment",
    "status": "booked",
    "start": "2026-03-04T09:00:00-05:00",
    "end": "2026-03-04T09:20:00-05:00",
    "participant": [
        {"actor": {"reference": "Patient/example"}, "status": "accepted"},
        {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                         "v3-ParticipationType", "code": "ATND"}]}],
         "status": "accepted"},
    ],
}
CANCEL_REASON = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "appointment-cancellation-reason", "code": "pat"}]}


def errors(registry, resource: dict, url: str) -> dict[str, str]:
    """Error expressions → diagnostics from the rules registered under ``url``."""
    return {i.expression: i.diagnostics for i in registry.profiles[url].check(resource)
            if i.severity == "error"}


def engine_errors(resource: dict, url: str) -> dict[str, str]:
    """Error expressions → diagnostics the profile engine alone names (no hand-written
    rule; ``url`` explicit unless it is a base definition)."""
    explicit = [] if url == APPOINTMENT else [url]
    return {i.expression: i.diagnostics for i in check_definitions(resource, explicit=explicit)
            if i.severity in ("error", "fatal")}


def test_the_starting_points_pass(registry):
    assert errors(registry, ENCOUNTER, US_CORE_ENCOUNTER) == {}
    assert errors(registry, APPT, APPOINTMENT) == {}
    assert engine_errors(ENCOUNTER, US_CORE_ENCOUNTER) == {}
    assert engine_errors(APPT, APPOINTMENT) == {}
    for resource in (ENCOUNTER, APPT):
        assert [i for i in check_resource(resource, registry.profiles)
                if i.severity == "error"] == []


def _without(resource: dict, key: str) -> dict:
    out = copy.deepcopy(resource)
    del out[key]
    return out


def _with(resource: dict, path: str, value) -> dict:
    out = copy.deepcopy(resource)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    elif value is None:
        del node[last]
    else:
        node[last] = value
    return out


ENCOUNTER_BREAKS = [
    (_with(ENCOUNTER, "class", {"coding": [ENCOUNTER["class"]]}), "Encounter.class",
     "Coding"),
    (_with(ENCOUNTER, "class.code", None), "Encounter.class.code", "required"),
    (_with(ENCOUNTER, "type", [{}]), "Encounter.type[0]", "coding or a text"),
    (_with(ENCOUNTER, "subject", {"reference": "Group/1"}), "Encounter.subject", "Patient"),
    (_with(ENCOUNTER, "period.end", "2026-03-04T08:00:00-05:00"), "Encounter.period.end",
     "per-1"),
]

#: Rules retired from encounter.py: the engine alone names each (its wording).
ENCOUNTER_ENGINE = [
    (_without(ENCOUNTER, "status"), "Encounter.status", "minimum required = 1"),
    (_with(ENCOUNTER, "status", "done"), "Encounter.status", "encounter-status"),
    (_without(ENCOUNTER, "class"), "Encounter.class", "minimum required = 1"),
    (_without(ENCOUNTER, "type"), "Encounter.type", "minimum required = 1"),
    (_with(ENCOUNTER, "type", []), "Encounter.type", "minimum required = 1"),
    (_without(ENCOUNTER, "subject"), "Encounter.subject", "minimum required = 1"),
    (_with(ENCOUNTER, "identifier.0.system", None), "Encounter.identifier[0].system",
     "minimum required = 1"),
    (_with(ENCOUNTER, "identifier.0.value", None), "Encounter.identifier[0].value",
     "minimum required = 1"),
    (_with(ENCOUNTER, "statusHistory.0.period", None), "Encounter.statusHistory[0].period",
     "minimum required = 1"),
    (_with(ENCOUNTER, "statusHistory.0.status", "seen"), "Encounter.statusHistory[0].status",
     "encounter-status"),
]


@pytest.mark.parametrize(("broken", "where", "why"), ENCOUNTER_BREAKS,
                         ids=[f"{w}-{i}" for i, (_, w, _) in enumerate(ENCOUNTER_BREAKS)])
def test_encounter_rules_catch(registry, broken, where, why):
    found = errors(registry, broken, US_CORE_ENCOUNTER)
    assert where in found, found
    assert why in found[where]


@pytest.mark.parametrize(("broken", "where", "why"), ENCOUNTER_ENGINE,
                         ids=[f"{w}-{i}" for i, (_, w, _) in enumerate(ENCOUNTER_ENGINE)])
def test_the_engine_alone_names_each_retired_encounter_rule(registry, broken, where, why):
    found = engine_errors(broken, US_CORE_ENCOUNTER)
    assert where in found, found
    assert why in found[where]
    assert where not in errors(registry, broken, US_CORE_ENCOUNTER)  # not said twice


def test_encounter_subject_may_be_a_bundle_or_conditional_reference(registry):
    for ref in ("urn:uuid:0b7a6a1e-6c4e-4a43-9c2e-5d6c1f0a0a01",
                "Patient?identifier=urn:oid:1.2.3|42",
                "https://ehr.example.org/fhir/Patient/42"):
        fine = _with(ENCOUNTER, "subject", {"reference": ref})
        assert errors(registry, fine, US_CORE_ENCOUNTER) == {}, ref


APPT_BREAKS = [
    (_without(APPT, "end"), "Appointment.end", "app-2"),
    (_without(APPT, "start"), "Appointment.start", "app-2"),
    (_without(_without(APPT, "start"), "end"), "Appointment.start", "app-3"),
    (_with(APPT, "end", "2026-03-04T08:00:00-05:00"), "Appointment.end", "before start"),
]

#: Rules retired from encounter.py: the engine alone names each (its wording).
APPT_ENGINE = [
    (_without(APPT, "status"), "Appointment.status", "minimum required = 1"),
    (_with(APPT, "status", "no-show"), "Appointment.status", "appointmentstatus"),
    (_with(APPT, "participant", []), "Appointment.participant", "minimum required = 1"),
    (_with(APPT, "participant.1", {"status": "accepted"}), "Appointment.participant[1]",
     "app-1"),
    (_with(APPT, "participant.0.status", None), "Appointment.participant[0].status",
     "minimum required = 1"),
    (_with(APPT, "participant.0.status", "maybe"), "Appointment.participant[0].status",
     "participationstatus"),
]


@pytest.mark.parametrize(("broken", "where", "why"), APPT_BREAKS,
                         ids=[f"{w}-{i}" for i, (_, w, _) in enumerate(APPT_BREAKS)])
def test_appointment_rules_catch(registry, broken, where, why):
    found = errors(registry, broken, APPOINTMENT)
    assert where in found, found
    assert why in found[where]


@pytest.mark.parametrize(("broken", "where", "why"), APPT_ENGINE,
                         ids=[f"{w}-{i}" for i, (_, w, _) in enumerate(APPT_ENGINE)])
def test_the_engine_alone_names_each_retired_appointment_rule(registry, broken, where, why):
    found = engine_errors(broken, APPOINTMENT)
    assert where in found, found
    assert why in found[where]
    assert where not in errors(registry, broken, APPOINTMENT)  # not said twice


@pytest.mark.parametrize("status", ["booked", "noshow"])
def test_app_4_a_cancelation_reason_only_on_a_cancelled_appointment(registry, status):
    """app-4 is the StructureDefinition's, evaluated by the profile engine and reported once,
    on the Appointment; as R4 wrote it ('no-show', not the code noshow), a no-show with a
    reason is refused too (pitfall C4)."""
    broken = {**APPT, "status": status, "cancelationReason": CANCEL_REASON}
    found = [(i.expression, i.diagnostics) for i in check_resource(broken, registry.profiles)
             if i.severity == "error"]
    assert [where for where, why in found if "app-4" in why] == ["Appointment"], found


@pytest.mark.parametrize("status", ["proposed", "cancelled", "waitlist"])
def test_app_3_lets_some_statuses_go_without_times(registry, status):
    timeless = {**_without(_without(APPT, "start"), "end"), "status": status}
    assert errors(registry, timeless, APPOINTMENT) == {}


def test_a_cancelled_appointment_may_say_why(registry):
    assert errors(registry, {**APPT, "status": "cancelled", "cancelationReason": CANCEL_REASON},
                  APPOINTMENT) == {}


def test_base_appointment_rules_apply_without_a_claimed_profile(registry):
    """Registered under the base canonical: check_resource applies them to every Appointment."""
    assert "meta" not in APPT
    broken = {**APPT, "status": "noshow", "cancelationReason": CANCEL_REASON}
    issues = [i for i in check_resource(broken, registry.profiles, "Bundle.entry[3].resource")
              if i.severity == "error"]
    # app-4 from the StructureDefinition, on the resource, once
    assert [i.expression for i in issues] == ["Bundle.entry[3].resource"]
    assert "app-4" in issues[0].diagnostics


# --------------------------------------------------------------------------- corpus

def test_corpus_examples_pass_the_rules(registry, corpus):
    """No false alarms on the official examples."""
    paths = [*sorted((corpus / "us-core/7.0.0/examples").glob("Encounter-*.json")),
             *sorted((corpus / "fhir-r4-examples/Appointment").glob("*.json"))]
    assert len(paths) >= 6
    for path in paths:
        resource = load_json(path)
        issues = [str(i) for i in check_resource(resource, registry.profiles)
                  if i.severity == "error"]
        assert issues == [], path.name


def _snapshot(sd: dict) -> dict[str, dict]:
    return {e["id"]: e for e in sd["snapshot"]["element"]}


def _us_core_encounter(corpus, version: str) -> dict:
    if version == "7.0.0":
        return load_json(corpus / "us-core/7.0.0/StructureDefinition/"
                         "StructureDefinition-us-core-encounter.json")
    with tarfile.open(corpus / "us-core/packages/hl7.fhir.us.core-6.1.0.tgz") as tar:
        member = next(m for m in tar.getmembers()
                      if m.name.endswith("StructureDefinition-us-core-encounter.json"))
        return json.load(tar.extractfile(member))


#: US Core Encounter elements with min 1 in the snapshot → what breaks them.
REQUIRED = {
    "Encounter.status": ("status", "Encounter.status"),
    "Encounter.class": ("class", "Encounter.class"),
    "Encounter.type": ("type", "Encounter.type"),
    "Encounter.subject": ("subject", "Encounter.subject"),
    "Encounter.identifier.system": ("identifier.0.system", "Encounter.identifier[0].system"),
    "Encounter.identifier.value": ("identifier.0.value", "Encounter.identifier[0].value"),
}


@pytest.mark.parametrize("version", ["6.1.0", "7.0.0"])
def test_every_required_element_of_the_snapshot_is_enforced(registry, corpus, version):
    sd = _us_core_encounter(corpus, version)
    assert sd["url"] == US_CORE_ENCOUNTER
    elements = _snapshot(sd)
    required = {eid for eid, e in elements.items()
                if e.get("min", 0) >= 1 and eid.count(".") >= 1
                and not eid.endswith((".url", ".extension"))
                and eid.rsplit(".", 1)[0] in ("Encounter", "Encounter.identifier")}
    assert required == set(REQUIRED)
    assert elements["Encounter.class"]["type"][0]["code"] == "Coding"
    assert elements["Encounter.status"]["binding"]["strength"] == "required"
    for path, where in REQUIRED.values():
        broken = _with(ENCOUNTER, path, None)
        assert where in engine_errors(broken, US_CORE_ENCOUNTER)
        # what mafhir reports: the models' structure check first, else rules and engine
        assert where in [i.expression for i in check_resource(broken, registry.profiles)
                         if i.severity == "error"]


def test_the_r4_appointment_invariants_are_the_ones_checked(corpus):
    sd = load_json(corpus / "fhir-r4-core/resources/StructureDefinition-Appointment.json")
    constraints = {c["key"]: c for e in sd["snapshot"]["element"]
                   for c in e.get("constraint", []) if c["key"].startswith("app-")}
    assert set(constraints) == {"app-1", "app-2", "app-3", "app-4"}
    assert all(c["severity"] == "error" for c in constraints.values())
    assert "'no-show'" in constraints["app-4"]["expression"]  # pitfall C4
    assert "'proposed' | 'cancelled' | 'waitlist'" in constraints["app-3"]["expression"]
    elements = _snapshot(sd)
    assert elements["Appointment.participant"]["min"] == 1
    assert elements["Appointment.participant.status"]["min"] == 1
    assert elements["Appointment.status"]["binding"]["strength"] == "required"
