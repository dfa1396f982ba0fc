"""The ``local`` destination: a FHIR store in one SQLite file, no server needed.

It keeps resources by type, id, version and business identifier, and answers a
transaction Bundle the way a FHIR server does: ``urn:uuid`` and conditional references
(``Patient?identifier=…``) resolved to ``Type/id``, conditional creates
(``ifNoneExist``) that find what is there, conditional updates, updates by id with a new
version, one transaction per Bundle (all or nothing). It is the default target of
``mafhir sync`` and ``mafhir demo``, and a cache other plugins can store pulled data in.

Only SQLite and the standard library: it is an embedded file, never a shared server.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import InputError, Problem
from ..io import dumps, loads
from .keys import identity_of

__all__ = ["DEFAULT_STORE", "LocalStore"]

JSON = dict[str, Any]
DEFAULT_STORE = "mafhir-store.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
  rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
  patient TEXT, date TEXT, body BLOB NOT NULL, PRIMARY KEY (rtype, id));
CREATE INDEX IF NOT EXISTS ix_resources_patient ON resources (patient, rtype, date);
CREATE TABLE IF NOT EXISTS history (
  rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (rtype, id, version));
CREATE TABLE IF NOT EXISTS identifiers (
  rtype TEXT NOT NULL, ident TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (rtype, ident));
"""

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
    """A FHIR resource store in SQLite (thread-safe; one connection per thread)."""

    def __init__(self, path: str | Path = DEFAULT_STORE) -> None:
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ writing
    def send(self, bundle: JSON) -> JSON:
        """Apply a transaction (or batch) Bundle atomically; a transaction-response."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or \
                bundle.get("type") not in ("transaction", "batch"):
            raise InputError([Problem("Bundle.type", "must be a transaction or batch Bundle",
                                      "not-supported")])
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            answers = self._apply(conn, bundle.get("entry") or [])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return {"resourceType": "Bundle", "type": f"{bundle['type']}-response",
                "entry": answers}

    def _apply(self, conn: sqlite3.Connection, entries: list[JSON]) -> list[JSON]:
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
            if method == "POST":
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
                                          "must be POST or PUT", "not-supported")])
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
            answers.append({"response": {"status": "201 Created" if version == 1 else "200 OK",
                                         "location": f"{rtype}/{rid}/_history/{version}",
                                         "etag": f'W/"{version}"'}})
        return answers

    def _match(self, conn: sqlite3.Connection, rtype: str, query: str) -> str | None:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        ident = params.get("identifier")
        if ident is None:
            raise InputError([Problem("request", "only identifier= conditions are supported",
                                      "not-supported")])
        row = conn.execute("SELECT id FROM identifiers WHERE rtype=? AND ident=?",
                           (rtype, f"identifier={unquote(ident)}")).fetchone()
        return row[0] if row else None

    @staticmethod
    def _version(conn: sqlite3.Connection, rtype: str, rid: str) -> int:
        row = conn.execute("SELECT version FROM resources WHERE rtype=? AND id=?",
                           (rtype, rid)).fetchone()
        return int(row[0]) if row else 0

    def _resolve(self, conn: sqlite3.Connection, node: Any, ids: dict[str, str]) -> Any:
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

    def _write(self, conn: sqlite3.Connection, rtype: str, rid: str, res: JSON) -> int:
        version = self._version(conn, rtype, rid) + 1
        body = {**res, "id": rid,
                "meta": {**(res.get("meta") or {}), "versionId": str(version)}}
        blob = dumps(body)
        conn.execute("INSERT OR REPLACE INTO resources VALUES (?,?,?,?,?,?)",
                     (rtype, rid, version, _patient(body), _date(body), blob))
        conn.execute("INSERT INTO history VALUES (?,?,?,?)", (rtype, rid, version, blob))
        for ident in body.get("identifier") or []:
            q = identity_of({"identifier": [ident]})
            if q:
                conn.execute("INSERT OR REPLACE INTO identifiers VALUES (?,?,?)",
                             (rtype, q, rid))
        return version

    def put(self, resource: JSON) -> JSON:
        """Store a resource as read from elsewhere (a pull's cache).

        A resource with a server id keeps it (``PUT Type/id``), so the references between
        pulled resources still resolve here; one without is keyed by its identifier.
        """
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

    # ------------------------------------------------------------------ reading
    def read(self, rtype: str, rid: str, version: int | None = None) -> JSON | None:
        conn = self._conn()
        if version is None:
            row = conn.execute("SELECT body FROM resources WHERE rtype=? AND id=?",
                               (rtype, rid)).fetchone()
        else:
            row = conn.execute("SELECT body FROM history WHERE rtype=? AND id=? AND version=?",
                               (rtype, rid, version)).fetchone()
        return loads(row[0]) if row else None

    def history(self, rtype: str, rid: str) -> list[JSON]:
        rows = self._conn().execute("SELECT body FROM history WHERE rtype=? AND id=? "
                                    "ORDER BY version", (rtype, rid)).fetchall()
        return [loads(r[0]) for r in rows]

    def find(self, rtype: str, system: str, value: str) -> JSON | None:
        """The resource with this business identifier (conditional-read)."""
        from ..identity import identifier_query

        rid = self._match(self._conn(), rtype, identifier_query(system, value))
        return self.read(rtype, rid) if rid else None

    def search(self, rtype: str | None = None, patient: str | None = None,
               date_from: str | None = None, date_to: str | None = None) -> Iterator[JSON]:
        """Resources by type, patient (``Patient/id``) and date range (ISO strings)."""
        sql, args = "SELECT body FROM resources WHERE 1=1", []
        for cond, val in (("rtype=?", rtype), ("patient=?", patient),
                          ("date>=?", date_from), ("date<=?", date_to)):
            if val is not None:
                sql += f" AND {cond}"
                args.append(val)
        for (body,) in self._conn().execute(sql + " ORDER BY rtype, date, id", args):
            yield loads(body)

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT rtype, count(*) FROM resources GROUP BY rtype")
        return {r: int(n) for r, n in rows}
