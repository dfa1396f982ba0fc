"""The ``local`` destination: a FHIR store in one SQLite file (or a PostgreSQL database), no
FHIR server needed.

It keeps resources by type, id, version and business identifier, and answers a
transaction Bundle the way a FHIR server does: ``urn:uuid`` and conditional references
(``Patient?identifier=…``) resolved to ``Type/id``, conditional creates
(``ifNoneExist``) that find what is there, conditional updates, updates by id with a new
version, one transaction per Bundle (all or nothing). It is the default target of
``mafhir sync`` and ``mafhir demo``, and a cache other plugins can store pulled data in.
Like an EHR's allergy list, a positive allergy makes the patient's earlier "no known
allergies" inactive (:mod:`mafhir.allergies`).

Its tables are SQLAlchemy Core over :mod:`mafhir.storage`, like every store: a path is a
SQLite file (the tables of earlier releases, unchanged, so their files open as they are),
a ``postgresql://`` URL a database. Writers take turns (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: a transaction-level advisory lock), so a conditional create never races
another and one Bundle is still all or nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.engine import Connection

from ..allergies import closed_by, is_positive
from ..bundle import rewrite_references
from ..errors import InputError, Problem
from ..identity import query_escape
from ..io import dumps, loads
from ..storage import (
    create_tables,
    display_url,
    is_postgres,
    lock_key,
    open_engine,
    sqlite_path,
    upsert,
    write_transaction,
)

__all__ = ["DEFAULT_STORE", "LocalStore", "metadata"]

JSON = dict[str, Any]
DEFAULT_STORE = "mafhir-store.db"

metadata = MetaData()
resources = Table(
    "resources", metadata,
    Column("rtype", Text, primary_key=True), Column("id", Text, primary_key=True),
    Column("version", Integer, nullable=False), Column("patient", Text), Column("date", Text),
    Column("body", LargeBinary, nullable=False))
Index("ix_resources_patient", resources.c.patient, resources.c.rtype, resources.c.date)
history = Table(
    "history", metadata,
    Column("rtype", Text, primary_key=True), Column("id", Text, primary_key=True),
    Column("version", Integer, primary_key=True), Column("body", LargeBinary, nullable=False))
identifiers = Table(
    "identifiers", metadata,
    Column("rtype", Text, primary_key=True), Column("ident", Text, primary_key=True),
    Column("id", Text, nullable=False))

_WRITERS = lock_key("mafhir local store writers")

_DATE_FIELDS = ("effectiveDateTime", "occurrenceDateTime", "start", "created", "recorded",
                "date", "authoredOn", "issued")
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")


def _date(res: JSON) -> str | None:
    for f in _DATE_FIELDS:
        if isinstance(res.get(f), str):
            return res[f]
    period = res.get("period") or res.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return period["start"]
    return None


def _patient(res: JSON) -> str | None:
    if res.get("resourceType") == "Patient":
        return f"Patient/{res['id']}"
    for f in _PATIENT_FIELDS:
        ref = res.get(f)
        if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("Patient/"):
            return ref["reference"]
    for p in res.get("participant") or []:
        ref = (p.get("actor") or {}).get("reference", "") if isinstance(p, dict) else ""
        if ref.startswith("Patient/"):
            return ref
    return None


class LocalStore:
    """A FHIR resource store in SQLite or PostgreSQL (thread-safe)."""

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        location = str(path)
        postgres = is_postgres(location)
        #: Where the store is, as it may be shown (a path, or a URL without its password).
        self.path: Path | str = display_url(location) if postgres \
            else Path(sqlite_path(location))
        self.engine = open_engine(location, pool_size=4)
        self._postgres = postgres
        self._dialect = self.engine.dialect.name
        self._write_lock = threading.Lock()
        create_tables(self.engine, metadata)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction at a time (see the module docstring)."""
        with self._write_lock, self.engine.connect() as conn, write_transaction(conn):
            if self._postgres:
                conn.execute(select(func.pg_advisory_xact_lock(_WRITERS)))
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ writing
    def send(self, bundle: JSON) -> JSON:
        """Apply a transaction (or batch) Bundle atomically; a transaction-response."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or \
                bundle.get("type") not in ("transaction", "batch"):
            raise InputError([Problem("Bundle.type", "must be a transaction or batch Bundle",
                                      "not-supported")])
        with self._tx() as conn:
            answers = self._apply(conn, bundle.get("entry") or [])
        return {"resourceType": "Bundle", "type": f"{bundle['type']}-response",
                "entry": answers}

    def _apply(self, conn: Connection, entries: list[JSON]) -> list[JSON]:
        ids: dict[str, str] = {}
        plans = []
        for i, entry in enumerate(entries):  # first pass: who is who
            res = entry.get("resource")
            req = entry.get("request") or {}
            if not isinstance(res, dict) or not res.get("resourceType"):
                raise InputError([Problem(f"Bundle.entry[{i}].resource", "is required",
                                          "required")])
            rtype = res["resourceType"]
            method, url = req.get("method"), str(req.get("url", ""))
            existing: str | None = None
            if method == "PATCH":  # read, change, write back: see mafhir.patch
                rtype, res = self._patched(conn, i, url, res)
                method, existing = "PUT", res["id"]
            elif method == "POST":
                cond = req.get("ifNoneExist")
                existing = self._match(conn, rtype, cond) if cond else None
            elif method == "PUT":
                if "?" in url:
                    existing = self._match(conn, rtype, url.split("?", 1)[1])
                else:
                    existing = url.split("/", 1)[1] if "/" in url else None
                    if existing and res.get("id") not in (None, existing):
                        raise InputError([Problem(f"Bundle.entry[{i}].resource.id",
                                                  "differs from the id in request.url",
                                                  "invariant")])
            else:
                raise InputError([Problem(f"Bundle.entry[{i}].request.method",
                                          "must be POST, PUT or PATCH", "not-supported")])
            rid = existing or str(uuid.uuid4())
            if entry.get("fullUrl"):
                ids[entry["fullUrl"]] = f"{rtype}/{rid}"
            plans.append((rtype, rid, method, existing, res))
        answers = []
        for rtype, rid, method, existing, res in plans:
            if method == "POST" and existing:
                version = self._version(conn, rtype, rid)
                answers.append({"response": {"status": "200 OK",
                                             "location": f"{rtype}/{rid}/_history/{version}",
                                             "etag": f'W/"{version}"'}})
                continue
            body = self._resolve(conn, res, ids)
            version = self._write(conn, rtype, rid, body)
            if rtype == "AllergyIntolerance":
                self._close_negations(conn, {**body, "id": rid})
            answers.append({"response": {"status": "201 Created" if version == 1 else "200 OK",
                                         "location": f"{rtype}/{rid}/_history/{version}",
                                         "etag": f'W/"{version}"'}})
        return answers

    def _patched(self, conn: Connection, i: int, url: str, change: JSON) -> tuple[str, JSON]:
        """(type, the stored resource with the entry's JSON Patch applied); InputError
        ``not-found`` when nothing here has it (never a thin new one)."""
        from ..patch import apply, not_found, operations

        rtype, _, query = url.partition("?")
        if not query:
            rtype, _, rid = url.partition("/")
            found: str | None = rid or None
        else:
            found = self._match(conn, rtype, query)
        if found is None or (body := self._body(conn, rtype, found)) is None:
            raise not_found(i, rtype)
        try:
            return rtype, apply(body, operations(change))
        except InputError as exc:
            raise InputError([Problem(f"Bundle.entry[{i}].{p.location}", p.message, p.code)
                              for p in exc.problems]) from None

    @staticmethod
    def _body(conn: Connection, rtype: str, rid: str) -> JSON | None:
        body = conn.execute(select(resources.c.body).where(
            resources.c.rtype == rtype, resources.c.id == rid)).scalar()
        return loads(body) if body is not None else None

    def _match(self, conn: Connection, rtype: str, query: str) -> str | None:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        ident = params.get("identifier")
        if ident is None:
            raise InputError([Problem("request", "only identifier= conditions are supported",
                                      "not-supported")])
        # Keys are stored as identity_of spells them (identifier_query's URL escapes); the
        # condition is decoded, then escaped that one way, so `%` in a system matches too.
        return conn.execute(select(identifiers.c.id).where(
            identifiers.c.rtype == rtype,
            identifiers.c.ident == f"identifier={query_escape(unquote(ident))}")).scalar()

    @staticmethod
    def _version(conn: Connection, rtype: str, rid: str) -> int:
        found = conn.execute(select(resources.c.version).where(
            resources.c.rtype == rtype, resources.c.id == rid)).scalar()
        return int(found or 0)

    def _resolve(self, conn: Connection, node: Any, ids: dict[str, str]) -> Any:
        if isinstance(node, dict):
            out = {k: self._resolve(conn, v, ids) if isinstance(v, (dict, list)) else v
                   for k, v in node.items()}
            ref = node.get("reference")
            if isinstance(ref, str):
                if ref in ids:
                    out["reference"] = ids[ref]
                elif "?" in ref and not ref.startswith(("http:", "https:")):
                    rtype, _, query = ref.partition("?")
                    found = self._match(conn, rtype, query)
                    if found:
                        out["reference"] = f"{rtype}/{found}"
            return out
        if isinstance(node, list):
            return [self._resolve(conn, v, ids) if isinstance(v, (dict, list)) else v
                    for v in node]
        return node

    def _write(self, conn: Connection, rtype: str, rid: str, res: JSON) -> int:
        from ..outbox.keys import identity_of  # here: the outbox package imports this one

        version = self._version(conn, rtype, rid) + 1
        body = {**res, "id": rid,
                "meta": {**(res.get("meta") or {}), "versionId": str(version)}}
        blob = dumps(body)
        conn.execute(upsert(self._dialect, resources,
                            {"rtype": rtype, "id": rid, "version": version,
                             "patient": _patient(body), "date": _date(body), "body": blob},
                            ("rtype", "id"), ("version", "patient", "date", "body")))
        conn.execute(history.insert().values(rtype=rtype, id=rid, version=version, body=blob))
        for ident in body.get("identifier") or []:
            q = identity_of({"identifier": [ident]})
            if q:
                conn.execute(upsert(self._dialect, identifiers,
                                    {"rtype": rtype, "ident": q, "id": rid},
                                    ("rtype", "ident"), ("id",)))
        return version

    def _close_negations(self, conn: Connection, allergy: JSON) -> None:
        """A positive allergy makes the patient's earlier "no known allergies" inactive, as
        an EHR's allergy list does (:mod:`mafhir.allergies`), in the same transaction."""
        patient = _patient(allergy)
        if patient is None or not is_positive(allergy):
            return
        rows = conn.execute(select(resources.c.id, resources.c.body).where(
            resources.c.patient == patient,
            resources.c.rtype == "AllergyIntolerance",
            resources.c.id != allergy["id"])).all()
        recorded = [loads(body) for _, body in rows]
        for closed in closed_by(allergy, f"AllergyIntolerance/{allergy['id']}", recorded):
            self._write(conn, "AllergyIntolerance", closed["id"], closed)

    def put(self, resource: JSON) -> JSON:
        """Store a resource as read from elsewhere (a pull's cache).

        A resource with a server id keeps it (``PUT Type/id``), so the references between
        pulled resources still resolve here; one without is keyed by its identifier.
        """
        from ..outbox.keys import identity_of

        rtype = resource["resourceType"]
        q = identity_of(resource)
        if resource.get("id"):
            request = {"method": "PUT", "url": f"{rtype}/{resource['id']}"}
        elif q:
            request = {"method": "PUT", "url": f"{rtype}?{q}"}
        else:
            request = {"method": "POST", "url": rtype}
        entry = {"resource": resource, "request": request}
        return self.send({"resourceType": "Bundle", "type": "transaction", "entry": [entry]})

    def repoint_patient(self, old: tuple[str, str], new: tuple[str, str]) -> int:
        """Move everything filed under one patient to another (an ADT^A40 merge).

        ``old`` and ``new`` are (system, value) of the two patients' identifiers. In one
        transaction, every resource whose patient is the old record gets each reference to
        it re-pointed to the survivor (a new version; its history keeps the old one). The
        Patient records themselves are left as they are (their ``link`` says the rest).
        Returns how many resources moved; with the old record empty, none (idempotent).
        InputError naming the patient when the survivor is not in the store.
        """
        from ..identity import identifier_query

        with self._tx() as conn:
            old_id = self._match(conn, "Patient", identifier_query(*old))
            new_id = self._match(conn, "Patient", identifier_query(*new))
            if old_id is None:
                return 0
            if new_id is None:
                raise InputError([Problem("Patient", "the surviving patient is not in the "
                                                     "local store", "not-found")])
            if old_id == new_id:
                return 0
            refs = {f"Patient/{old_id}": f"Patient/{new_id}"}
            rows = conn.execute(select(resources.c.rtype, resources.c.id, resources.c.body)
                                .where(resources.c.patient == f"Patient/{old_id}",
                                       resources.c.rtype != "Patient")).all()
            for rtype, rid, body in rows:
                self._write(conn, rtype, rid, rewrite_references(loads(body), refs))
        return len(rows)

    # ------------------------------------------------------------------ reading
    def read(self, rtype: str, rid: str, version: int | None = None) -> JSON | None:
        if version is None:
            query = select(resources.c.body).where(resources.c.rtype == rtype,
                                                   resources.c.id == rid)
        else:
            query = select(history.c.body).where(history.c.rtype == rtype,
                                                 history.c.id == rid,
                                                 history.c.version == version)
        with self._read() as conn:
            body = conn.execute(query).scalar()
        return loads(body) if body is not None else None

    def history(self, rtype: str, rid: str) -> list[JSON]:
        with self._read() as conn:
            bodies = conn.execute(select(history.c.body).where(
                history.c.rtype == rtype, history.c.id == rid)
                .order_by(history.c.version)).scalars().all()
        return [loads(b) for b in bodies]

    def find(self, rtype: str, system: str, value: str) -> JSON | None:
        """The resource with this business identifier (conditional-read)."""
        from ..identity import identifier_query

        with self._read() as conn:
            rid = self._match(conn, rtype, identifier_query(system, value))
        return self.read(rtype, rid) if rid else None

    def search(self, rtype: str | None = None, patient: str | None = None,
               date_from: str | None = None, date_to: str | None = None) -> Iterator[JSON]:
        """Resources by type, patient (``Patient/id``) and date range (ISO strings); those
        without a date first in each type, on both backends."""
        r = resources.c
        query = select(r.body)
        if rtype is not None:
            query = query.where(r.rtype == rtype)
        if patient is not None:
            query = query.where(r.patient == patient)
        if date_from is not None:
            query = query.where(r.date >= date_from)
        if date_to is not None:
            query = query.where(r.date <= date_to)
        with self._read() as conn:
            bodies = conn.execute(query.order_by(r.rtype, r.date.nulls_first(), r.id)
                                  ).scalars().all()
        for body in bodies:
            yield loads(body)

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(resources.c.rtype, func.count())
                                .group_by(resources.c.rtype)).all()
        return {r: int(n) for r, n in rows}
