"""Where an outbound v2 message finds the patient its order names only by MRN.

A task for a patient the clinic already has carries just the MRN, so the Bundle holds a
``Patient?identifier=…`` reference and no Patient: PID went out with no name, birth date
or sex, and a lab or pharmacy cannot match it. Before writing the message, the channel
reads that Patient from where the clinic keeps it — the local store (``local[:PATH]``) or
a FHIR destination (a URL or a ``mafhir.toml`` name, searched ``Patient?identifier=``) —
and adds it to the resources :func:`~mafhir.hl7v2.segments.pid_segment` writes from.
The writers stay pure; the reading happens here, at the edge.

``MAFHIR_PATIENTS`` names the source; unset, the local store of the working directory is
read when it exists. A source that cannot answer raises (the outbox retries a transient
failure) rather than sending a PID stripped of what the clinic has.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..identity import identifier_from_reference, identifier_query
from ..resourceset import ResourceSet

__all__ = ["PATIENTS_ENV", "PatientLookup", "close_lookup", "default_lookup", "lookup_for",
           "with_patients"]

JSON = dict[str, Any]
#: (identifier system, value) → the Patient with that identifier, or None.
PatientLookup = Callable[[str, str], "JSON | None"]
PATIENTS_ENV = "MAFHIR_PATIENTS"


class _Lookup:
    """A :data:`PatientLookup` that holds what it reads from, closed with its channel."""

    def __init__(self, find: Callable[[str, str], JSON | None],
                 close: Callable[[], Any] | None = None) -> None:
        self._find = find
        self._close = close

    def __call__(self, system: str, value: str) -> JSON | None:
        return self._find(system, value)

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _local(path: str) -> PatientLookup:
    if not Path(path).exists():  # reading must not create an empty store
        return _Lookup(lambda system, value: None)
    from ..outbox.local import LocalStore

    store = LocalStore(path)
    return _Lookup(lambda system, value: store.find("Patient", system, value), store.close)


def lookup_for(source: str) -> PatientLookup:
    """The lookup of ``source``: ``local[:PATH]``, a FHIR base URL, or a connector name."""
    from ..outbox.delivery import connect, resolve_destination

    canonical = resolve_destination(source)
    if canonical.startswith("local:"):
        return _local(canonical.partition(":")[2])
    connector = connect(canonical)
    search = getattr(connector, "search", None)
    if search is None:
        connector.close()
        raise ValueError(f"{source!r} cannot be searched for patients")

    def find(system: str, value: str) -> JSON | None:
        # FHIR's search escapes stay; the client URL-encodes the parameter itself
        query = unquote(identifier_query(system, value).partition("=")[2])
        return next(iter(search("Patient", {"identifier": query})), None)

    return _Lookup(find, connector.close)


def close_lookup(lookup: PatientLookup | None) -> None:
    """Close what ``lookup`` reads from (a store file, a server session), if anything."""
    close = getattr(lookup, "close", None)
    if close is not None:
        close()


def default_lookup() -> PatientLookup | None:
    """``$MAFHIR_PATIENTS``, else the working directory's local store when it exists."""
    source = os.environ.get(PATIENTS_ENV)
    if source:
        return lookup_for(source)
    from ..outbox.local import DEFAULT_STORE

    return _local(DEFAULT_STORE) if Path(DEFAULT_STORE).exists() else None


def with_patients(resources: ResourceSet, refs: Iterable[JSON | None],
                  lookup: PatientLookup | None) -> ResourceSet:
    """``resources``, plus each Patient a ref names by identifier that the set lacks."""
    if lookup is None:
        return resources
    for ref in refs:
        text = str((ref or {}).get("reference", ""))
        if resources.resolve(ref) is not None:
            continue
        parsed = identifier_from_reference(text)
        if parsed is None or parsed[0] != "Patient":
            continue
        found = lookup(parsed[1], parsed[2])
        if found is not None:
            resources.add(found, text)
    return resources
