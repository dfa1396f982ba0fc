"""Validate FHIR JSON: structure (R4 via the R4B models) plus the rules of claimed profiles."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ..io import dumps
from ..profiles import Validator
from ..profiles.validator import BundleContext
from ..registry import Profile
from .issues import Issue
from .structure import check_structure

__all__ = ["check_bundle", "check_definitions", "check_document", "check_profiles",
           "check_resource"]

JSON = dict[str, Any]

#: Canonical prefix of FHIR core resource definitions; rules registered under
#: ``CORE + "Observation"`` (say) apply to every Observation, claimed profile or not.
CORE = "http://hl7.org/fhir/StructureDefinition/"


def check_profiles(resource: JSON, profiles: Mapping[str, Profile], where: str = "") -> list[Issue]:
    """Issues from the hand-written rules of every profile the resource claims in
    ``meta.profile`` (the StructureDefinitions' own rules are ``check_definitions``')."""
    out: list[Issue] = []
    rtype = resource.get("resourceType", "Resource")
    for url in resource.get("meta", {}).get("profile", []) or []:
        canonical = str(url).split("|")[0]
        profile = profiles.get(canonical)
        if profile is None:
            continue  # the engine checks it, or says it is not installed
        if profile.resource_type != rtype:
            continue  # the engine reports the mismatch
        out.extend(profile.check(resource))
    return out


@lru_cache(maxsize=1)
def _engine() -> Validator:
    return Validator.default()


def check_definitions(resource: JSON, where: str = "", engine: Validator | None = None,
                      explicit: Sequence[str] = (), notes: bool = False,
                      elsewhere: Collection[str] = (),
                      bundle: BundleContext | None = None,
                      errors_only: bool = False) -> list[Issue]:
    """Issues from the StructureDefinitions (``explicit`` profiles and claimed ones, else
    base R4), by the profile engine (``mafhir.profiles``); its notes (information) only
    when asked, its errors alone with ``errors_only`` (the cheap road for a clean
    resource). Inside a Bundle (``where``) an explicit profile applies to the entries of
    its type only."""
    rtype = resource.get("resourceType", "Resource")
    base = where or rtype
    engine = engine or _engine()
    if where:
        explicit = [u for u in explicit if engine.defs.type_of(u) in (rtype, None)]
    out = []
    for found in engine.validate(resource, profiles=explicit, checked_elsewhere=elsewhere,
                                 bundle=bundle, errors_only=errors_only):
        if found.severity == "information" and not notes:
            continue
        expr = found.expression
        if expr.startswith(rtype):
            expr = base + expr[len(rtype):]
        out.append(Issue(found.severity, found.code, expr, found.message))
    return out


def _fix(issue: Issue, base: str, rtype: str) -> Issue:
    expr = issue.expression
    if expr.startswith(rtype):
        expr = base + expr[len(rtype):]
    return Issue(issue.severity, issue.code, expr, issue.diagnostics)


def check_resource(resource: JSON, profiles: Mapping[str, Profile], where: str = "", *,
                   engine: Validator | None = None, explicit: Sequence[str] = (),
                   notes: bool = False, bundle: BundleContext | None = None,
                   errors_only: bool = False) -> list[Issue]:
    """Structure issues, then profile issues (only when the structure is sound): the
    hand-written rules of ``profiles`` and the definitions' (see ``check_definitions``);
    ``bundle`` resolves references to the other entries of the Bundle it is in.
    ``errors_only``: errors alone (what the pipeline refuses a task for), found cheaply."""
    structural = check_structure(resource, where)
    if structural:
        return structural
    rtype = resource.get("resourceType", "Resource")
    base = where or rtype
    issues = check_profiles(resource, profiles)
    core = profiles.get(CORE + rtype)  # invariants of the base resource apply to all
    if core is not None:
        issues.extend(core.check(resource))
    fixed = [_fix(i, base, rtype) for i in issues]
    said = {(i.severity, i.expression) for i in fixed}
    # a hand-written rule and a definition saying the same at the same place: one issue
    fixed.extend(i for i in check_definitions(resource, where, engine, explicit, notes,
                                              elsewhere=profiles, bundle=bundle,
                                              errors_only=errors_only)
                 if (i.severity, i.expression) not in said)
    if errors_only:
        return [i for i in fixed if i.severity in ("error", "fatal")]
    return fixed


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for key, value in node.items():
            if key != "reference":
                yield from _references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _references(value, f"{path}[{i}]")


#: ``"reference":"urn:uuid:…`` as orjson writes it (compact, a key's quotes unescaped).
_URN_REFERENCE = re.compile(rb'"reference":"(urn:uuid:[^"\\]*)(["\\])')


def _may_dangle(resource: Any, full_urls: Mapping[str, int]) -> bool:
    """Could ``resource`` hold a urn:uuid reference no entry has? One C-speed pass over its
    JSON instead of a Python walk that builds every path; the walk runs only on a yes.
    Every reference key is found; one whose value holds an escape is walked."""
    try:
        text = dumps(resource)
    except (TypeError, ValueError):  # not JSON-able: let the walk see it
        return True
    if b"urn:uuid:" not in text:
        return False
    return any(end != b'"' or found.decode() not in full_urls
               for found, end in _URN_REFERENCE.findall(text))


def check_bundle(bundle: JSON, profiles: Mapping[str, Profile], *,
                 engine: Validator | None = None, explicit: Sequence[str] = (),
                 notes: bool = False, errors_only: bool = False) -> list[Issue]:
    """A Bundle's own rules (bdl-3/7/8, urn:uuid references resolve) and each entry's.
    ``errors_only``: the errors alone, the same ones, found by the compiled walk for a
    clean entry (what a converter refuses a Bundle for; no warnings to report)."""
    issues = check_structure({**bundle, "entry": []})
    btype = bundle.get("type")
    full_urls: dict[str, int] = {}
    index: BundleContext | None = None
    for i, entry in enumerate(bundle.get("entry", []) or []):
        where = f"Bundle.entry[{i}]"
        full_url = entry.get("fullUrl")
        if full_url:
            if full_url in full_urls:
                issues.append(Issue("error", "invariant", f"{where}.fullUrl",
                                    f"duplicates entry[{full_urls[full_url]}] (bdl-7)"))
            full_urls[full_url] = i
            if "/_history/" in full_url:
                issues.append(Issue("error", "invariant", f"{where}.fullUrl",
                                    "must not contain /_history/ (bdl-8)"))
        if btype in ("transaction", "batch"):
            request = entry.get("request") or {}
            if not request.get("method") or not request.get("url"):
                issues.append(Issue("error", "invariant", f"{where}.request",
                                    "a transaction/batch entry needs request.method and url "
                                    "(bdl-3)"))
            if "response" in entry:
                issues.append(Issue("error", "invariant", f"{where}.response",
                                    "not allowed in a transaction/batch request (bdl-4)"))
        resource = entry.get("resource")
        if resource is None:
            continue
        if index is None:
            index = BundleContext.of(bundle)
        issues.extend(check_resource(resource, profiles, f"{where}.resource", engine=engine,
                                     explicit=explicit, notes=notes, bundle=index,
                                     errors_only=errors_only))
    for i, entry in enumerate(bundle.get("entry", []) or []):
        resource = entry.get("resource")
        if resource is None or not _may_dangle(resource, full_urls):
            continue
        for path, ref in _references(resource, f"Bundle.entry[{i}].resource"):
            if ref.startswith("urn:uuid:") and ref not in full_urls:
                issues.append(Issue("error", "not-found", path,
                                    "refers to a urn:uuid that no entry in this Bundle has"))
    if errors_only:
        return [i for i in issues if i.severity in ("error", "fatal")]
    return issues


def check_document(doc: Any, profiles: Mapping[str, Profile], *,
                   engine: Validator | None = None, explicit: Sequence[str] = (),
                   notes: bool = False, errors_only: bool = False) -> list[Issue]:
    """A resource or a Bundle, whichever ``doc`` is; ``explicit`` profiles (canonical
    URLs) are checked besides the claimed ones (in a Bundle, on entries of their type).
    ``errors_only``: its errors alone, as ``check_bundle``'s."""
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" and not any(
            (engine or _engine()).defs.type_of(u) == "Bundle" for u in explicit):
        return check_bundle(doc, profiles, engine=engine, explicit=explicit, notes=notes,
                            errors_only=errors_only)
    if isinstance(doc, dict):
        found = check_resource(doc, profiles, engine=engine, explicit=explicit, notes=notes,
                               errors_only=errors_only)
        # its structure issues come unfiltered
        return [i for i in found if i.severity in ("error", "fatal")] if errors_only \
            else found
    return [Issue("error", "structure", "Resource", "is not a JSON object")]
