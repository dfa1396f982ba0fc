"""Mutation suites: each example resource, broken one rule class at a time, is rejected by
the profile engine with that rule named — and the unbroken original has no error.

The examples are the US Core packages' own (7.0.0's in the corpus's ``us-core/7.0.0/examples``,
6.1.0's in its package archive), each checked against the profiles it claims, in its release.
The element to break is chosen from the claimed profile's snapshot, read here from the package
itself (not from the engine's compiled tables), and the mutation follows the rule's definition:

- cardinality: drop an element the profile makes required (min >= 1); repeat one it allows once
  (max = 1 where the base allows many)
- fixed / pattern: change the value (a code to ``xyz``) of an element with fixed[x]/pattern[x]
- binding: a code from a required binding replaced by ``xyz``
- slice: drop every item of a required slice (found by ``tests/uscore.py``, the independent
  reader); add an item matching no slice to a closed slicing
- invariant: break one of the profile's invariants the way its human text forbids (a table of
  breakers per key below); else dom-3: a contained resource nothing refers to
- type: a primitive given as a JSON object, a complex element as a string; a choice element
  renamed to a type the profile does not allow (``valueBoolean`` where only Quantity is)

A summary table (rule class x mutants x rejected) is printed by the last test.
"""

from __future__ import annotations

import copy
import json
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mafhir.profiles import Validator
from profile_validators import validator as shared_validator
from uscore import Snapshot

JSON = dict[str, Any]
CLASSES = ("cardinality-min", "cardinality-max", "fixed", "pattern", "binding", "slice-required",
           "slice-closed", "invariant", "type-kind", "type-choice")
#: the engine's names (Issue.rule) that count as naming each class
NAMED: dict[str, set[str]] = {
    "cardinality-min": {"cardinality"}, "cardinality-max": {"cardinality"},
    "fixed": {"fixed"}, "pattern": {"pattern"}, "binding": {"binding"},
    "slice-required": {"slicing", "cardinality"}, "slice-closed": {"slicing", "type"},
    "type-kind": {"type"}, "type-choice": {"type"},
}


class Mutant(NamedTuple):
    example: str
    cls: str
    target: str        # the element id broken
    rule: str          # the rule the engine must name ("" = any name of the class)
    resource: JSON
    profile: str


# --- the package, read on its own ---------------------------------------------------------------

@cache
def _package(tgz: str) -> tuple[dict[str, JSON], list[tuple[str, JSON]]]:
    """(StructureDefinitions by URL, examples by name) of a package archive, in one read."""
    structures: dict[str, JSON] = {}
    examples: list[tuple[str, JSON]] = []
    with tarfile.open(tgz) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.rsplit("/", 1)[-1]
            is_sd = name.startswith("StructureDefinition-") and name.endswith(".json")
            is_example = member.name.startswith("package/example/") and name.endswith(".json")
            if not (is_sd or is_example):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            data = json.load(handle)
            if is_example:
                examples.append((name[:-5], data))
            elif is_sd:
                structures[data["url"]] = data
    return structures, examples


def _structures(tgz: str) -> dict[str, JSON]:
    return _package(tgz)[0]


#: US Core 7.0.0 and 6.1.0, each against its own examples; "r4": the official R4 examples
#: against the base resource definitions (the corpus's fhir-r4-core).
RELEASES = ("7.0.0", "6.1.0", "r4")
#: R4 examples per resource type (of 38 types) mutated: enough for every class, in seconds
R4_PER_TYPE = 3
#: the true errors of the official R4 examples (listed with their reasons in
#: tests/test_profiles_corpus.py): not mutated, their originals are not error-free
R4_WITH_ERRORS = {"MedicationRequest-medrx0301", "Observation-clinical-gender",
                  "Questionnaire-qs1"}
#: the classes base R4 has no instance of: no fixed or pattern values, no slicing, and no
#: element narrowed to max 1 from a base of many
NOT_IN_BASE = {"fixed", "pattern", "slice-required", "slice-closed", "cardinality-max"}


def _tgz(corpus: Path, release: str) -> str:
    return str(corpus / "us-core" / "packages" / f"hl7.fhir.us.core-{release}.tgz")


@cache
def _r4_structures(folder: str) -> dict[str, JSON]:
    out = {}
    for path in sorted(Path(folder).glob("StructureDefinition-*.json")):
        sd = json.loads(path.read_text(encoding="utf-8"))
        out[sd["url"]] = sd
    return out


def _sds(corpus: Path, release: str) -> dict[str, JSON]:
    if release == "r4":
        return _r4_structures(str(corpus / "fhir-r4-core" / "resources"))
    return _structures(_tgz(corpus, release))


def _examples(corpus: Path, release: str = "7.0.0") -> list[tuple[str, JSON]]:
    """The release's own examples that claim a profile (7.0.0: the corpus folder; 6.1.0: the
    package archive's ``example/``); for "r4", the first R4 examples of each type that has a
    base definition in the corpus."""
    if release == "r4":
        types = {sd["type"] for sd in _sds(corpus, "r4").values()}
        out: list[tuple[str, JSON]] = []
        for folder in sorted((corpus / "fhir-r4-examples").iterdir()):
            if folder.name not in types or folder.name == "Bundle":
                continue
            paths = [p for p in sorted(folder.glob("*.json")) if p.stem not in R4_WITH_ERRORS]
            out.extend((p.stem, json.loads(p.read_text(encoding="utf-8")))
                       for p in paths[:R4_PER_TYPE])
        return out
    if release == "7.0.0":
        found = [(p.stem, json.loads(p.read_text(encoding="utf-8")))
                 for p in sorted((corpus / "us-core" / "7.0.0" / "examples").glob("*.json"))]
    else:
        found = _package(_tgz(corpus, release))[1]
    return [(name, r) for name, r in found
            if r.get("resourceType") != "Bundle" and r.get("meta", {}).get("profile")]


# --- walking a resource by element id ----------------------------------------------------------

def _values(node: Any) -> list[Any]:
    return node if isinstance(node, list) else [node]


def _top(resource: JSON, element: JSON) -> tuple[str, Any] | None:
    """(JSON key, value) of a top-level element (``Observation.status``) in the resource."""
    path = element["path"]
    if path.count(".") != 1 or ":" in element["id"]:
        return None
    name = path.split(".")[1]
    if name.endswith("[x]"):
        stem = name[:-3]
        for key, value in resource.items():
            if key.startswith(stem) and key[len(stem):][:1].isupper():
                return key, value
        return None
    return (name, resource[name]) if name in resource else None


def _elements(sd: JSON) -> list[JSON]:
    return sd["snapshot"]["element"]


def _skip_path(element: JSON) -> bool:
    """Elements a mutation should not touch: ids, meta, text, extensions (their slicing is by
    url, so a change moves the item out of its slice instead of breaking a rule there)."""
    last = element["path"].rsplit(".", 1)[-1]
    return last in ("id", "meta", "text", "extension", "modifierExtension", "url",
                    "implicitRules", "language", "contained")


# --- one mutation per class ----------------------------------------------------------------------

def _cardinality_min(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    for element in _elements(sd):
        if element.get("min", 0) >= 1 and not _skip_path(element):
            found = _top(resource, element)
            if found:
                mutant = copy.deepcopy(resource)
                del mutant[found[0]]
                mutant.pop(f"_{found[0]}", None)  # an extension alone would still be present
                yield element["id"], mutant
                return


def _cardinality_max(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    for element in _elements(sd):
        if element.get("max") == "1" and element.get("base", {}).get("max") == "*" \
                and not _skip_path(element):
            found = _top(resource, element)
            if found and isinstance(found[1], list) and found[1]:
                mutant = copy.deepcopy(resource)
                mutant[found[0]] = found[1] + [copy.deepcopy(found[1][0])]
                yield element["id"], mutant
                return


def _changed(value: Any) -> Any:
    """A value of the same JSON shape that differs from ``value`` where it counts."""
    if isinstance(value, str):
        return "xyz"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, dict):
        out = dict(value)
        for key in ("code", "value", "system"):
            if key in out and not isinstance(out[key], dict | list):
                out[key] = _changed(out[key])
                return out
        for key in ("coding",):
            if key in out:
                out[key] = [_changed(c) for c in out[key]]
                return out
    if isinstance(value, list):
        return [_changed(v) for v in value]
    return value


def _constrained(resource: JSON, sd: JSON, prefix: str) -> Iterator[tuple[str, JSON]]:
    """Change an element that carries fixed[x] (prefix 'fixed') or pattern[x] ('pattern')."""
    snapshot = Snapshot(sd)
    for element in _elements(sd):
        key = next((k for k in element if k.startswith(prefix)), None)
        if key is None or _skip_path(element) or element["path"].count(".") < 1:
            continue
        if _discriminates(snapshot, element["id"]):
            continue  # it decides a slice's membership: a change leaves the slice, breaks nothing
        for parent, node in snapshot.nodes(resource, element["id"]):
            if parent is None:
                continue
            mutant = copy.deepcopy(resource)
            target = _locate(mutant, resource, node)
            if target is None:
                continue
            holder, name, index = target
            new = _changed(node)
            if new == node:
                continue
            if index is None:
                holder[name] = new
            else:
                holder[name][index] = new
            yield element["id"], mutant
            return


def _discriminates(snapshot: Snapshot, element_id: str) -> bool:
    """Whether the element (or its value) tells a slice's items apart: under a slice
    ``X:name``, an element whose path below it meets a discriminator path of X's slicing."""
    segments = element_id.split(".")
    for i, segment in enumerate(segments):
        if ":" not in segment:
            continue
        sliced = ".".join([*segments[:i], segment.split(":")[0]])
        rest = ".".join(s.split(":")[0] for s in segments[i + 1:])
        slicing = snapshot.elements.get(sliced, {}).get("slicing", {})
        for disc in slicing.get("discriminator", []):
            path = disc["path"]
            if disc["type"] == "type" and not rest:
                return True
            if path == "$this" or not rest or rest == path or rest.startswith(f"{path}.") \
                    or path.startswith(f"{rest}."):
                return disc["type"] != "type"
    return False


def _locate(mutant: Any, original: Any, node: Any) -> tuple[Any, str, int | None] | None:
    """Where ``node`` (an object of ``original``) sits in the deep copy ``mutant``."""
    if isinstance(original, dict):
        for key, value in original.items():
            if value is node:
                return mutant, key, None
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is node:
                        return mutant, key, i
            found = _locate(mutant[key], value, node)
            if found:
                return found
    elif isinstance(original, list):
        for m, o in zip(mutant, original, strict=True):
            found = _locate(m, o, node)
            if found:
                return found
    return None


def _binding(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    for element in _elements(sd):
        binding = element.get("binding", {})
        if binding.get("strength") != "required" or _skip_path(element):
            continue
        if any(k.startswith(("fixed", "pattern")) for k in element):
            continue
        found = _top(resource, element)
        if not found:
            continue
        codes = [t["code"] for t in element.get("type", [])]
        mutant = copy.deepcopy(resource)
        key, value = found
        if codes == ["code"] and isinstance(value, str):
            mutant[key] = "xyz"
        elif codes == ["CodeableConcept"] and isinstance(value, dict) and value.get("coding"):
            mutant[key] = {**value, "coding": [{**c, "code": "xyz"} for c in value["coding"]]}
        elif codes == ["CodeableConcept"] and isinstance(value, list) and value \
                and value[0].get("coding"):
            mutant[key] = [{**v, "coding": [{**c, "code": "xyz"} for c in v.get("coding", [])]}
                           for v in value]
        elif codes == ["Coding"] and isinstance(value, dict):
            mutant[key] = {**value, "code": "xyz"}
        else:
            continue
        yield element["id"], mutant
        return


def _slice_required(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    snapshot = Snapshot(sd)
    for element in _elements(sd):
        eid = element["id"]
        last = eid.rsplit(".", 1)[-1]
        if ":" not in last or element.get("min", 0) < 1 or "extension" in last.lower() \
                or last.split(":")[0].endswith("[x]") or eid.count(":") > 1:
            continue
        found = snapshot.nodes(resource, eid)
        if not found:
            continue
        mutant = copy.deepcopy(resource)
        doomed = {id(node) for _, node in found}
        if not _drop(mutant, resource, doomed):
            continue
        yield eid, mutant
        return


def _drop(mutant: Any, original: Any, doomed: set[int]) -> bool:
    """Remove from ``mutant`` the list items whose originals are ``doomed``; emptied lists go."""
    changed = False
    if isinstance(original, dict):
        for key in list(original):
            value = original[key]
            if isinstance(value, list) and any(id(v) in doomed for v in value):
                kept = [m for m, o in zip(mutant[key], value, strict=True) if id(o) not in doomed]
                if kept:
                    mutant[key] = kept
                else:
                    del mutant[key]
                changed = True
            elif isinstance(value, dict | list):
                changed = _drop(mutant[key], value, doomed) or changed
    elif isinstance(original, list):
        for m, o in zip(mutant, original, strict=True):
            changed = _drop(m, o, doomed) or changed
    return changed


def _slice_closed(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    """An item no slice admits, in a closed slicing: for a list, a changed copy of an item
    appended; for a choice element sliced by type (closed: only the slices' types), a type
    the slices do not name."""
    for element in _elements(sd):
        slicing = element.get("slicing")
        if not slicing or slicing.get("rules") != "closed" or _skip_path(element):
            continue
        found = _top(resource, element)
        if not found:
            continue
        key, value = found
        mutant = copy.deepcopy(resource)
        if element["path"].endswith("[x]"):
            stem = element["path"].rsplit(".", 1)[-1][:-3]
            named = {e["id"].rsplit(":", 1)[-1].lower() for e in _elements(sd)
                     if e["id"].startswith(f"{element['id']}:") and "." not in
                     e["id"][len(element["id"]):]}
            suffix, odd = next((t, v) for t, v in _ODD_TYPES if f"{stem}{t}".lower() not in named)
            del mutant[key]
            mutant[f"{stem}{suffix}"] = odd
        elif isinstance(value, list) and value:
            mutant[key] = [*value, _changed(copy.deepcopy(value[0]))]
        else:
            continue
        yield element["id"], mutant
        return


def _no_value(r: JSON) -> JSON:
    return {k: v for k, v in r.items() if not k.startswith("value") and k not in (
        "dataAbsentReason", "component", "hasMember")}


#: key -> a way to break it that its human text forbids (None: not applicable to this resource)
BREAKERS: dict[str, Callable[[JSON], JSON | None]] = {
    "us-core-2": _no_value,
    "vs-2": _no_value,
    "obs-6": lambda r: {**r, "dataAbsentReason": {"text": "unknown"}}
    if any(k.startswith("value") for k in r) else None,
    "us-core-8": lambda r: {k: v for k, v in r.items() if not k.startswith("effective")}
    if r.get("status") == "final" else None,
    "us-core-9": lambda r: {k: v for k, v in r.items() if k != "issued"}
    if r.get("status") == "final" else None,
    "us-core-10": lambda r: {k: v for k, v in r.items() if not k.startswith("effective")}
    if r.get("status") == "final" else None,
    "us-core-7": lambda r: {**{k: v for k, v in r.items() if not k.startswith("performed")},
                            "status": "completed"},
    "us-core-20": lambda r: {**{k: v for k, v in r.items() if k != "whenHandedOver"},
                             "status": "completed"},
    "us-core-21": lambda r: {**{k: v for k, v in r.items() if k != "requester"},
                             "intent": "order"},
    "us-core-14": lambda r: {k: v for k, v in r.items() if k not in ("name", "relationship")},
    "us-core-13": lambda r: {k: v for k, v in r.items() if k not in (
        "practitioner", "organization", "healthcareService", "location")},
    "pd-1": lambda r: {k: v for k, v in r.items() if k not in ("telecom", "endpoint")},
    "org-1": lambda r: {k: v for k, v in r.items() if k not in ("identifier", "name")},
    "us-core-15": lambda r: {k: v for k, v in r.items() if k not in ("identifier",
                                                                    "subscriberId")},
    "ait-1": lambda r: {k: v for k, v in r.items() if k not in ("clinicalStatus",
                                                               "verificationStatus")},
    "con-4": lambda r: {**r, "abatementDateTime": "2020-01-01", "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "code": "active"}]}},
    # 7.0.0: "SHOULD have a translation to the NDC value set" (a CVX code without NDC)
    "us-core-5": lambda r: {**r, "vaccineCode": {"coding": [
        {"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}},
    # 6.1.0's us-core-5 says the opposite: no NDC coding
    "us-core-5|vaccineCode.coding.where(system='http://hl7.org/fhir/sid/ndc').empty()":
        lambda r: {**r, "vaccineCode": {"coding": [
            {"system": "http://hl7.org/fhir/sid/cvx", "code": "140"},
            {"system": "http://hl7.org/fhir/sid/ndc", "code": "49281-0703-55"}]}},
    "us-core-24": lambda r: {**{k: v for k, v in r.items() if not k.startswith("value")},
                             "valueString": "smoker"}
    if "72166-2" in json.dumps(r.get("code")) else None,
    "us-core-6": lambda r: {**r, "name": [{"use": "official", "text": "no parts"}]}
    if r.get("resourceType") == "Patient" else None,
}


def _invariant(resource: JSON, sd: JSON) -> Iterator[tuple[str, str, JSON]]:
    # the profile's own invariants first (us-core-*, pd-1), then the base ones it carries
    constraints = sorted(((c["key"], c["expression"]) for e in _elements(sd)[:1]
                          for c in e.get("constraint", [])),
                         key=lambda c: (not c[0].startswith(("us-core", "pd-")),
                                        c[0] == "obs-6", c[0]))
    for key, expression in constraints:
        breaker = BREAKERS.get(f"{key}|{expression}") or BREAKERS.get(key)
        mutant = breaker(copy.deepcopy(resource)) if breaker else None
        if mutant is not None and mutant != resource:
            yield key, key, mutant
            return
    # dom-3, on every DomainResource: a contained resource nothing refers to
    mutant = copy.deepcopy(resource)
    mutant["contained"] = [*resource.get("contained", []),
                           {"resourceType": "Basic", "id": "unreferenced-1",
                            "code": {"text": "nothing refers to me"}}]
    yield "dom-3", "dom-3", mutant


def _type_kind(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    for element in _elements(sd):
        if _skip_path(element):
            continue
        found = _top(resource, element)
        if not found:
            continue
        key, value = found
        mutant = copy.deepcopy(resource)
        if isinstance(value, str):
            mutant[key] = {"text": value}       # a primitive as an object
        elif isinstance(value, dict):
            mutant[key] = "a string"            # a complex element as a string
        else:
            continue
        yield element["id"], mutant
        return


_ODD_TYPES = (("Boolean", True), ("Integer", 7), ("Attachment", {"contentType": "text/plain"}))


def _type_choice(resource: JSON, sd: JSON) -> Iterator[tuple[str, JSON]]:
    for element in _elements(sd):
        if not element["path"].endswith("[x]") or _skip_path(element):
            continue
        found = _top(resource, element)
        if not found:
            continue
        allowed = {t["code"].lower() for t in element.get("type", [])}
        stem = element["path"].rsplit(".", 1)[-1][:-3]
        for suffix, value in _ODD_TYPES:
            if suffix.lower() not in allowed:
                mutant = {k: v for k, v in copy.deepcopy(resource).items() if k != found[0]}
                mutant[f"{stem}{suffix}"] = value
                yield element["id"], mutant
                return


MUTATORS: dict[str, Callable[[JSON, JSON], Iterator[Any]]] = {
    "cardinality-min": _cardinality_min, "cardinality-max": _cardinality_max,
    "fixed": lambda r, sd: _constrained(r, sd, "fixed"),
    "pattern": lambda r, sd: _constrained(r, sd, "pattern"),
    "binding": _binding, "slice-required": _slice_required, "slice-closed": _slice_closed,
    "invariant": _invariant, "type-kind": _type_kind, "type-choice": _type_choice,
}


def mutants(corpus: Path, release: str = "7.0.0") -> list[Mutant]:
    sds = _sds(corpus, release)
    out: list[Mutant] = []
    for name, resource in _examples(corpus, release):
        claims = resource.get("meta", {}).get("profile", []) if release != "r4" else \
            [f"http://hl7.org/fhir/StructureDefinition/{resource['resourceType']}"]
        for url in claims:
            sd = sds.get(url.split("|")[0])
            if sd is None:
                continue
            for cls, mutate in MUTATORS.items():
                for made in mutate(resource, sd):
                    if cls == "invariant":
                        target, rule, mutant = made
                    else:
                        (target, mutant), rule = made, ""
                    out.append(Mutant(name, cls, target, rule, mutant, sd["url"]))
            break  # the first claimed profile the package defines
    return out


# --- the tests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def validator(release: str) -> Validator:
    return shared_validator(None if release == "r4" else f"us-core@{release}")


@pytest.fixture(scope="module")
def all_mutants(corpus: Path, release: str) -> list[Mutant]:
    return mutants(corpus, release)


def test_there_are_fifty_examples_and_every_class_is_exercised(release, all_mutants):
    assert len({m.example for m in all_mutants}) >= 50
    by_class = Counter(m.cls for m in all_mutants)
    expected = [c for c in CLASSES if release != "r4" or c not in NOT_IN_BASE]
    assert all(by_class[cls] >= 1 for cls in expected), dict(by_class)
    # the invariants broken are the profiles' own, not only the dom-3 fallback
    assert len({m.rule for m in all_mutants if m.cls == "invariant"}) >= (
        10 if release != "r4" else 3)


def test_the_originals_have_no_error(corpus, release, validator):
    bad = {}
    for name, resource in _examples(corpus, release):
        errors = [str(i) for i in validator.validate(resource)
                  if i.severity in ("error", "fatal")]
        if errors:
            bad[name] = errors
    assert not bad


def test_every_mutant_is_rejected_with_its_rule_named(corpus, release, validator, all_mutants,
                                                      capsys):
    warnings = _warning_keys(corpus, release)
    summary: Counter[tuple[str, str]] = Counter()
    missed: list[str] = []
    for m in all_mutants:
        issues = validator.validate(m.resource, profiles=[m.profile])
        wanted = {m.rule} if m.rule else NAMED[m.cls]
        severities = {"error", "fatal"} | ({"warning"} if m.rule in warnings else set())
        rejected = any(i.rule in wanted and i.severity in severities for i in issues)
        summary[(m.cls, "mutants")] += 1
        summary[(m.cls, "rejected")] += rejected
        if not rejected:
            missed.append(f"{m.cls} {m.example} {m.target}: wanted {sorted(wanted)}, got "
                          f"{sorted({(i.severity, i.rule) for i in issues})}")
    with capsys.disabled():
        print(f"\n{len(all_mutants)} mutants of {len({m.example for m in all_mutants})} "
              f"{'R4' if release == 'r4' else 'US Core ' + release} examples\n"
              "rule class        mutants  rejected")
        for cls in CLASSES:
            print(f"{cls:<17} {summary[(cls, 'mutants')]:>7}  {summary[(cls, 'rejected')]:>8}")
    assert not missed, "\n".join(missed)


def _warning_keys(corpus: Path, release: str) -> set[str]:
    """Invariants of severity warning: named as a warning is their rejection."""
    sds = _sds(corpus, release)
    return {c["key"] for sd in sds.values() for e in sd["snapshot"]["element"]
            for c in e.get("constraint", []) if c.get("severity") == "warning"}
