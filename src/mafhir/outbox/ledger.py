"""The ledger: what was delivered where, and what of a Bundle still needs sending.

For each entry with a business identifier the ledger knows, per destination, the
server's id and version and the hash of the content sent. Planning a Bundle then:

* an entry whose content is unchanged is left out, and references to it (its
  ``urn:uuid``) become the server's ``Type/id``;
* an entry whose content changed is sent as an update of the known id
  (``PUT Type/id``);
* an entry the ledger does not know is sent as the mapper wrote it (a conditional
  create or conditional update).

Resources shared by many patients (the clinic, practitioners, rooms, payers) are
planned apart: the engine creates each once, under a lock on its identity, before any
Bundle that uses it — so parallel patients never race a conditional create.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..bundle import rewrite_references
from .keys import content_hash, digest, identity_of

__all__ = ["SHARED_TYPES", "Plan", "PlannedEntry", "entries_of", "ledger_rows", "plan",
           "shared_entries"]

JSON = dict[str, Any]

#: Resource types outside any one patient's compartment: created once, under a lock.
SHARED_TYPES = frozenset({"Organization", "Practitioner", "PractitionerRole", "Location",
                          "HealthcareService", "Device", "Medication", "Endpoint"})


@dataclass(frozen=True, slots=True)
class PlannedEntry:
    """One entry of a Bundle and its ledger identity."""

    index: int
    rtype: str
    ident: str | None  # hash of the identifier query; None when it has no identifier
    hash: str
    entry: JSON

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.rtype, self.ident) if self.ident else None


@dataclass
class Plan:
    """What to send of one Bundle."""

    shared: list[PlannedEntry] = field(default_factory=list)
    send: list[PlannedEntry] = field(default_factory=list)
    unchanged: int = 0
    bundle: JSON | None = None  # the Bundle to send, None when nothing is left


def entries_of(bundle: JSON) -> list[PlannedEntry]:
    out = []
    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") or {}
        rtype = str(res.get("resourceType", ""))
        ident = identity_of(res)
        out.append(PlannedEntry(i, rtype, digest(rtype, ident) if ident else None,
                                content_hash(res) if res else "", entry))
    return out


def shared_entries(bundle: JSON, entries: list[PlannedEntry] | None = None
                   ) -> list[PlannedEntry]:
    """Entries for resources shared across patients, created with a conditional create.

    ``entries``: ``entries_of(bundle)`` when the caller has it already (each costs a
    canonical dump and two SHA-256 per entry)."""
    return [p for p in (entries_of(bundle) if entries is None else entries)
            if p.rtype in SHARED_TYPES and p.ident
            and (p.entry.get("request") or {}).get("method") in ("POST", "PUT")]


def plan(bundle: JSON, known: dict[tuple[str, str], JSON],
         refs: dict[str, str] | None = None, entries: list[PlannedEntry] | None = None
         ) -> Plan:
    """Split ``bundle`` against the ledger rows ``known`` (keyed by (type, identity)).

    ``refs`` maps more ``urn:uuid`` fullUrls to server ids (resources delivered apart).
    Hashes are always of the entries as given, so a re-run compares like with like.
    ``entries``: ``entries_of(bundle)``, when the caller has it already.
    """
    result = Plan()
    refs = dict(refs or {})
    keep: list[PlannedEntry] = []
    for p in entries_of(bundle) if entries is None else entries:
        row = known.get(p.key) if p.key else None
        method = (p.entry.get("request") or {}).get("method")
        if row is not None and row["content_hash"] == p.hash and method in ("POST", "PUT"):
            result.unchanged += 1
            if p.entry.get("fullUrl"):
                refs[p.entry["fullUrl"]] = row["server_id"]
            continue
        keep.append(p)
    if not keep:
        return result
    out = []
    for p in keep:
        entry = dict(p.entry)
        if "resource" in entry and refs:
            entry["resource"] = rewrite_references(entry["resource"], refs)
        row = known.get(p.key) if p.key else None
        if row is not None:  # changed since it was delivered: update the resource we made
            rtype, _, rid = str(row["server_id"]).partition("/")
            entry["resource"] = {**entry["resource"], "id": rid}
            entry["request"] = {"method": "PUT", "url": f"{rtype}/{rid}"}
        out.append(entry)
        result.send.append(p)
    result.bundle = {**bundle, "entry": out}
    return result


def _location(status_entry: JSON) -> tuple[str | None, str | None]:
    """(``Type/id``, version) from a response entry's location/etag."""
    resp = status_entry.get("response") or {}
    loc = resp.get("location")
    version = None
    tid = None
    if isinstance(loc, str) and loc:
        path = urlsplit(loc).path.rstrip("/")
        head, sep, ver = path.partition("/_history/")
        if sep:
            version = ver.split("/")[0]
        parts = head.split("/")
        if len(parts) >= 2:
            tid = f"{parts[-2]}/{parts[-1]}"
    etag = resp.get("etag")
    if isinstance(etag, str) and etag:
        version = etag.removeprefix("W/").strip('"') or version
    return tid, version


def ledger_rows(destination: str, sent: Iterable[PlannedEntry], response: JSON) -> list[JSON]:
    """Ledger rows for the entries ``sent``, from the server's response (same order)."""
    rows = []
    answers = response.get("entry") or []
    for p, answer in zip(sent, answers, strict=False):
        if not p.ident:
            continue
        tid, version = _location(answer)
        if not tid:
            continue
        rows.append({"destination": destination, "rtype": p.rtype, "ident": p.ident,
                     "server_id": tid, "version": version, "content_hash": p.hash})
    return rows
