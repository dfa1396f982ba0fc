"""The generated conformance suite for a connector.

What the suite expects of a connector (``factory(base_url) -> connector``):

* it keeps its declared contract (:func:`mafhir.testing.check_contract`): every capability
  in its ``capabilities`` is there and callable as core calls it, none goes undeclared;

* ``send(bundle)`` delivers a transaction Bundle, raising a :class:`mafhir.errors.MafhirError`
  when the server did not accept it: ``.transient`` says whether retrying can help,
  ``.outcome`` holds the server's OperationOutcome (a dict) and ``.status`` the HTTP status;
* it retries 429 and 503 itself, waiting at least ``Retry-After``, and gives up with a
  transient error when the server keeps refusing;
* Bundles sent one after another are stored in that order (a retried one included): the
  server's version history of the patient they update shows them in the order sent;
* optional: ``search(resource_type, params)`` yields every matching resource of every page
  (the paging tests are skipped, with the reason, when it has none);
* optional auth: pass ``auth_factory(base_url, AuthSpec) -> connector`` to test that the
  bearer token is sent and that a SMART Backend Services token is fetched, reused and
  renewed after the server stops accepting it.

The suite checks the server's state itself, over plain HTTP, never through the connector.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..errors import MafhirError
from .contract import check_contract
from .plugin import require_fhir_server
from .proxy import Fault, FaultProxy

__all__ = ["AuthSpec", "connector_suite"]

JSON = dict[str, Any]
Factory = Callable[[str], Any]


@dataclass(frozen=True)
class AuthSpec:
    """How the suite wants the connector to authenticate.

    ``kind`` is ``bearer`` (``token``) or ``smart`` (``token_url``, ``client_id``,
    ``key_file`` — a PEM private key —, ``algorithm`` RS384/ES384, ``scope``).
    """

    kind: str
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    key_file: Path | None = None
    algorithm: str | None = None
    scope: str = "system/*.read system/*.write"


def _http(method: str, url: str, body: JSON | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, JSON | None]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/fhir+json", "Content-Type": "application/fhir+json",
        **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def _count(base: str, rtype: str, system: str) -> int:
    q = urllib.parse.urlencode({"identifier": f"{system}|", "_summary": "count"})
    status, body = _http("GET", f"{base}/{rtype}?{q}")
    assert status == 200 and body is not None, f"count search failed: {status}"
    return int(body["total"])


def _patient(system: str, value: str, family: str = "Kitson") -> JSON:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
            "name": [{"family": family, "given": ["Ada"]}], "gender": "female",
            "birthDate": "1980-02-03"}


def _bundle(system: str, n_obs: int = 2, broken: bool = False) -> JSON:
    """A transaction like mafhir's: a conditional Patient and Observations referencing it."""
    pid = f"urn:uuid:{uuid.uuid4()}"
    entries: list[JSON] = [{"fullUrl": pid, "resource": _patient(system, "p1"),
                            "request": {"method": "POST", "url": "Patient",
                                        "ifNoneExist": f"identifier={system}|p1"}}]
    for i in range(n_obs):
        obs: JSON = {"resourceType": "Observation",
                     "identifier": [{"system": system, "value": f"o{i}"}],
                     "status": "final",
                     "category": [{"coding": [{
                         "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                         "code": "vital-signs"}]}],
                     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                     "subject": {"reference": pid},
                     "effectiveDateTime": "2026-03-04T09:15:00-05:00",
                     "valueQuantity": {"value": 70 + i, "unit": "/min",
                                       "system": "http://unitsofmeasure.org", "code": "/min"}}
        if broken and i == n_obs - 1:
            del obs["status"]
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": obs,
                        "request": {"method": "POST", "url": "Observation",
                                    "ifNoneExist": f"identifier={system}|o{i}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _revision(system: str, i: int) -> JSON:
    """Revision ``i`` of one patient (conditional update) and a new Observation about them."""
    pid = f"urn:uuid:{uuid.uuid4()}"
    obs = _bundle(system, n_obs=i + 1)["entry"][-1]
    obs["resource"]["subject"] = {"reference": pid}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pid, "resource": {**_patient(system, "ord"), "name": [
            {"family": "Kitson", "given": [f"rev{i}"]}]},
         "request": {"method": "PUT", "url": f"Patient?identifier={system}|ord"}},
        obs]}


def _close(conn: Any) -> None:
    close = getattr(conn, "close", None)
    if callable(close):
        close()


def connector_suite(connector: str | Factory, *,
                    auth_factory: Callable[[str, AuthSpec], Any] | None = None) -> type:
    """A pytest test class checking ``connector`` against a real FHIR server.

    :param connector: the registered connector name (its ``ConnectorSpec.factory`` is
        called with the server's base URL) or a factory ``base_url -> connector``.
    :param auth_factory: builds the connector with the given :class:`AuthSpec`; without
        it the auth tests are skipped (with that reason).
    """

    def make(base_url: str) -> Any:
        if isinstance(connector, str):
            from ..plugins import get_registry

            return get_registry().connectors[connector].factory(base_url)
        return connector(base_url)

    class ConnectorConformance:
        """Generated by mafhir.testing.connector_suite."""

        @pytest.fixture(scope="class")
        @classmethod
        def base_url(cls) -> str:
            return require_fhir_server()

        @pytest.fixture
        def system(self) -> str:
            return f"urn:mafhir:kit:{uuid.uuid4()}"

        @pytest.fixture
        def proxy(self, base_url: str) -> Iterator[FaultProxy]:
            with FaultProxy(base_url) as p:
                yield p

        @pytest.fixture
        def conn(self, base_url: str) -> Iterator[Any]:
            c = make(base_url)
            yield c
            _close(c)

        # ---------------------------------------------------------------- declared contract
        def test_declared_contract(self, conn: Any) -> None:
            """Every capability the connector declares is there, callable as core calls
            it, and nothing it offers goes undeclared (mafhir.registry.CAPABILITIES)."""
            problems = check_contract(conn)
            assert not problems, "; ".join(problems)

        # ---------------------------------------------------------------- idempotent create
        def test_idempotent_create(self, conn: Any, base_url: str, system: str) -> None:
            bundle = _bundle(system, n_obs=3)
            conn.send(bundle)
            conn.send(bundle)
            assert _count(base_url, "Patient", system) == 1
            assert _count(base_url, "Observation", system) == 3

        def test_references_resolved(self, conn: Any, base_url: str, system: str) -> None:
            conn.send(_bundle(system, n_obs=1))
            q = urllib.parse.urlencode({"identifier": f"{system}|o0"})
            _, page = _http("GET", f"{base_url}/Observation?{q}")
            _, pats = _http("GET", f"{base_url}/Patient?"
                            + urllib.parse.urlencode({"identifier": f"{system}|p1"}))
            assert page and pats
            obs, pat = page["entry"][0]["resource"], pats["entry"][0]["resource"]
            assert obs["subject"]["reference"] == f"Patient/{pat['id']}"

        # ---------------------------------------------------------------- version check
        def test_update_with_version_check(self, conn: Any, base_url: str, system: str) -> None:
            status, created = _http("POST", f"{base_url}/Patient", _patient(system, "v"))
            assert status == 201 and created is not None
            rid = created["id"]
            changed = {**_patient(system, "v"), "id": rid, "gender": "other"}
            put = {"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{rid}",
                                                  "ifMatch": 'W/"1"'}}]}
            conn.send(put)
            _, now = _http("GET", f"{base_url}/Patient/{rid}")
            assert now is not None and now["meta"]["versionId"] == "2"
            assert now["gender"] == "other"
            with pytest.raises(MafhirError) as info:
                conn.send(put)  # still If-Match version 1: stale
            assert info.value.transient is False
            assert getattr(info.value, "status", None) == 412
            _, after = _http("GET", f"{base_url}/Patient/{rid}")
            assert after is not None and after["meta"]["versionId"] == "2"

        # ---------------------------------------------------------------- ordering
        def test_ordering(self, proxy: FaultProxy, system: str, base_url: str) -> None:
            """Four revisions of one patient, sent in turn (the second one answered 503
            first), are stored as versions 1–4 in the order sent, each Observation after
            the one before; the latest state is the last revision."""
            n = 4
            c = make(proxy.base_url)
            try:
                for i in range(n):
                    if i == 1:
                        proxy.add(Fault.status_code(503, retry_after="0"), method="POST")
                    c.send(_revision(system, i))
            finally:
                _close(c)  # a connector that queues must have delivered by now
            q = urllib.parse.urlencode({"identifier": f"{system}|ord"})
            _, found = _http("GET", f"{base_url}/Patient?{q}")
            assert found is not None and found.get("total", len(found.get("entry", []))) == 1
            pid = found["entry"][0]["resource"]["id"]
            _, history = _http("GET", f"{base_url}/Patient/{pid}/_history?_count=100")
            assert history is not None
            versions = sorted((e["resource"] for e in history.get("entry", [])),
                              key=lambda r: int(r["meta"]["versionId"]))
            assert [v["meta"]["versionId"] for v in versions] == [str(i + 1) for i in range(n)]
            assert [v["name"][0]["given"][0] for v in versions] == [f"rev{i}" for i in range(n)]
            stamps = []
            for i in range(n):
                q = urllib.parse.urlencode({"identifier": f"{system}|o{i}"})
                _, page = _http("GET", f"{base_url}/Observation?{q}")
                assert page is not None and len(page.get("entry", [])) == 1, f"o{i}"
                stamps.append(page["entry"][0]["resource"]["meta"]["lastUpdated"])
            assert stamps == sorted(stamps)  # created in the order sent

        # ---------------------------------------------------------------- paging
        def test_paging(self, conn: Any, base_url: str, system: str) -> None:
            if not callable(getattr(conn, "search", None)):
                pytest.skip("the connector has no search(resource_type, params)")
            for i in range(7):
                _http("POST", f"{base_url}/Patient", _patient(system, f"s{i}"))
            found = list(conn.search("Patient", {"identifier": f"{system}|", "_count": "3"}))
            values = sorted(r["identifier"][0]["value"] for r in found)
            assert values == [f"s{i}" for i in range(7)]

        def test_paging_follows_next_links(self, proxy: FaultProxy, system: str,
                                           base_url: str) -> None:
            c = make(proxy.base_url)
            try:
                if not callable(getattr(c, "search", None)):
                    pytest.skip("the connector has no search(resource_type, params)")
                for i in range(5):
                    _http("POST", f"{base_url}/Patient", _patient(system, f"n{i}"))
                assert len(list(c.search("Patient", {"identifier": f"{system}|",
                                                     "_count": "2"}))) == 5
                pages = [s for s in proxy.requests("GET", "/Patient")]
                assert len(pages) == 3  # 2 + 2 + 1
            finally:
                _close(c)

        # ---------------------------------------------------------------- error mapping
        def test_rejected_bundle_is_permanent_with_outcome(self, conn: Any, base_url: str,
                                                           system: str) -> None:
            with pytest.raises(MafhirError) as info:
                conn.send(_bundle(system, n_obs=2, broken=True))
            err = info.value
            assert err.transient is False
            outcome = getattr(err, "outcome", None)
            assert isinstance(outcome, dict) and outcome["resourceType"] == "OperationOutcome"
            assert any(i.get("severity") in ("error", "fatal") for i in outcome["issue"])
            assert _count(base_url, "Patient", system) == 0  # nothing stored

        # ---------------------------------------------------------------- retries
        @pytest.mark.parametrize("status", [429, 503])
        def test_retry_honours_retry_after(self, proxy: FaultProxy, system: str,
                                           base_url: str, status: int) -> None:
            c = make(proxy.base_url)
            try:
                proxy.add(Fault.status_code(status, retry_after="1"), method="POST")
                c.send(_bundle(system, n_obs=1))
                posts = proxy.requests("POST")
                assert [p.status for p in posts] == [status, 200]
                assert posts[1].at - posts[0].at >= 0.95  # waited for Retry-After
                assert _count(base_url, "Observation", system) == 1
            finally:
                _close(c)

        def test_gives_up_transient(self, proxy: FaultProxy, system: str,
                                    base_url: str) -> None:
            c = make(proxy.base_url)
            try:
                proxy.add(Fault.status_code(503, retry_after="0"), method="POST", times=10_000)
                with pytest.raises(MafhirError) as info:
                    c.send(_bundle(system, n_obs=1))
                assert info.value.transient is True
                assert getattr(info.value, "status", None) == 503
                assert len(proxy.requests("POST")) >= 2  # it did retry before giving up
                assert _count(base_url, "Observation", system) == 0
            finally:
                _close(c)

        # ---------------------------------------------------------------- auth
        def test_bearer_header(self, base_url: str, system: str) -> None:
            if auth_factory is None:
                pytest.skip("no auth_factory given to connector_suite")
            token = uuid.uuid4().hex
            with FaultProxy(base_url, auth_check=lambda h: h.get("Authorization")
                            == f"Bearer {token}") as proxy:
                c = auth_factory(proxy.base_url, AuthSpec("bearer", token=token))
                try:
                    c.send(_bundle(system, n_obs=1))
                finally:
                    _close(c)
                assert {s.status for s in proxy.seen} <= {200, 201}
            assert _count(base_url, "Observation", system) == 1

        @pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
        def test_smart_token_fetched_reused_refreshed(self, base_url: str, system: str,
                                                      tmp_path: Path, algorithm: str) -> None:
            if auth_factory is None:
                pytest.skip("no auth_factory given to connector_suite")
            pytest.importorskip("jwt")
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ec, rsa

            from .tokenserver import TokenServer

            key = (rsa.generate_private_key(65537, 2048) if algorithm == "RS384"
                   else ec.generate_private_key(ec.SECP384R1()))
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
            (tmp_path / "key.pem").write_bytes(pem)
            with TokenServer({"kit-client": public}) as tokens, \
                    FaultProxy(base_url, auth_check=tokens.valid) as proxy:
                spec = AuthSpec("smart", token_url=tokens.url, client_id="kit-client",
                                key_file=tmp_path / "key.pem", algorithm=algorithm,
                                scope="system/Patient.cruds system/Observation.cruds")
                c = auth_factory(proxy.base_url, spec)
                try:
                    c.send(_bundle(system, n_obs=1))
                    c.send(_bundle(system, n_obs=1))
                    assert len(tokens.issued) == 1, tokens.refused  # reused, not refetched
                    tokens.expire_all()  # the server forgets it: 401 until a new token
                    c.send(_bundle(system, n_obs=2))
                finally:
                    _close(c)
                assert tokens.refused == []
                assert len(tokens.issued) == 1  # only the new one is valid
                assert tokens.scopes == [spec.scope, spec.scope]
                assert [s.status for s in proxy.seen].count(401) == 1
            assert _count(base_url, "Observation", system) == 2

    return ConnectorConformance
