"""Secrets never reach the store, the logs or the screen (issue 11, items 10 and 11).

Real processes (``mafhir`` as installed) run ``send``, ``sync`` and ``pull`` with Basic,
bearer and SMART credentials from a mafhir.toml, at ``MAFHIR_LOG_LEVEL=DEBUG``, against

* an echo server (here, on loopback) that answers 401 or 500 with the ``Authorization``
  header it got, the bare credential and the token in its OperationOutcome, and
* SEKMET behind a proxy that checks the credentials (the successful path),

with the outbox on SQLite and on PostgreSQL. Then every table and column of both stores,
every stdout/stderr and the DEBUG logs are searched for each secret: none may be there.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mafhir.cli.main import build_cli
from mafhir.context import Clinic
from mafhir.testing import FaultProxy, TokenServer

MAFHIR = str(Path(sys.executable).parent / "mafhir")
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from outbox_helpers import postgres_database  # noqa: E402

RSA_KEY = rsa.generate_private_key(65537, 2048)


class EchoServer:
    """A FHIR server that refuses everything and repeats the credentials it was sent.

    ``/401/fhir`` and ``/500/fhir`` answer with that status; ``/metadata`` says it takes
    transactions, so the client gets as far as sending. Every answer's OperationOutcome
    quotes the Authorization header, the bare credential (and decoded Basic) and carries
    the header again under an ``authorization`` member, the way a careless server would.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                outer.seen.append(auth)
                if self.path.split("?")[0].endswith("/metadata"):
                    body = {"resourceType": "CapabilityStatement", "status": "active",
                            "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
                            "rest": [{"mode": "server", "interaction": [
                                {"code": "transaction"}, {"code": "batch"}]}]}
                    status = 200
                else:
                    status = 401 if self.path.startswith("/401/") else 500
                    scheme, _, cred = auth.partition(" ")
                    decoded = ""
                    if scheme == "Basic":
                        decoded = base64.b64decode(cred).decode(errors="replace")
                    body = {"resourceType": "OperationOutcome", "issue": [{
                        "severity": "error", "code": "security" if status == 401 else
                        "exception",
                        "diagnostics": f"Authorization: {auth} refused; credential {cred} "
                                       f"({decoded}) token={cred}"}],
                            "authorization": auth}
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                if status == 401:
                    self.send_header("WWW-Authenticate", f'Bearer error="{cred}"')
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    public = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    with TokenServer({"clinic-app": public}) as t:
        yield t


def _tasks(tmp: Path) -> tuple[Path, Path, str]:
    system = f"https://clinic-{uuid.uuid4().hex[:10]}.example.org/fhir/id"
    (tmp / "clinic.json").write_text(json.dumps({"name": "Secret Test Clinic",
                                                 "system": system, "npi": "1234567893"}))
    mrn = f"MS-{uuid.uuid4().hex[:6]}"
    who = {"mrn": mrn, "system": f"{system}/mrn", "family": "Quillfeather", "given": ["Rosa"],
           "gender": "female", "birth_date": "1984-07-19"}
    tasks = [{"task": "vitals", "id": f"v-{i}", "patient": who,
              "effective": "2026-11-27T10:35:00-05:00", "heart_rate": {"value": 70 + i}}
             for i in range(2)]
    (tmp / "tasks.ndjson").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return tmp / "tasks.ndjson", tmp / "clinic.json", f"{system}/mrn|{mrn}"


def _config(tmp: Path, echo: str, ok: str, tokens: TokenServer, user: str) -> Path:
    (tmp / "key.pem").write_bytes(RSA_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    auths = {
        "basic": f'auth = "basic"\nusername = "{user}"\npassword = "${{T_EHR_PASSWORD}}"\n',
        "bearer": 'auth = "bearer"\ntoken_env = "T_EHR_TOKEN"\n',
        "smart": f'auth = "smart"\nclient_id = "clinic-app"\ntoken_url = "{tokens.url}"\n'
                 f'key_file = "{tmp / "key.pem"}"\n',
    }
    text = ""
    for kind, auth in auths.items():
        for where, url in (("401", f"{echo}/401/fhir"), ("500", f"{echo}/500/fhir"),
                           ("ok", ok)):
            text += f'[destinations.{kind}-{where}]\nurl = "{url}"\nmax_attempts = 1\n{auth}\n'
    (tmp / "mafhir.toml").write_text(text)
    return tmp / "mafhir.toml"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([MAFHIR, *args], env=env, capture_output=True, timeout=120,
                          check=False)


def _dump(url: str) -> str:
    """Every value of every column of every table of an outbox (SQLite file or PostgreSQL)."""
    from sqlalchemy import MetaData, create_engine, select

    from mafhir.outbox.postgres import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url) if "://" in url else f"sqlite:///{url}")
    meta = MetaData()
    meta.reflect(engine)
    assert {"outbox_items", "outbox_attempts", "outbox_audit"} <= set(meta.tables)
    out = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                out.extend(bytes(v).decode(errors="replace")
                           if isinstance(v, (bytes, memoryview)) else str(v) for v in row)
    engine.dispose()
    return "\n".join(out)


def test_secrets_reach_neither_store_nor_logs_nor_screen(fhir_base_url: str, tmp_path: Path,
                                                         tokens: TokenServer):
    user = f"clinic-{uuid.uuid4().hex[:6]}"
    password = f"pw-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    basic = f"Basic {base64.b64encode(f'{user}:{password}'.encode()).decode()}"

    def checked(headers: dict[str, str]) -> bool:
        got = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        return got in (basic, f"Bearer {token}") or tokens.valid(headers)

    tasks, clinic, mrn = _tasks(tmp_path)
    outputs: list[bytes] = []
    with EchoServer() as echo, FaultProxy(fhir_base_url, auth_check=checked) as proxy, \
            postgres_database() as pg_url:
        cfg = _config(tmp_path, echo.base, proxy.base_url, tokens, user)
        env = {**os.environ, "MAFHIR_CONFIG": str(cfg), "T_EHR_PASSWORD": password,
               "T_EHR_TOKEN": token, "MAFHIR_LOG_LEVEL": "DEBUG"}
        env.pop("MAFHIR_LOG_LIBRARIES", None)
        env.pop("MAFHIR_OUTBOX", None)
        sqlite_db = str(tmp_path / "outbox.db")
        for kind in ("basic", "bearer", "smart"):
            for where, code in (("401", 1), ("500", 1), ("ok", 0)):
                r = _run(env, "send", "--to", f"{kind}-{where}", "--clinic", str(clinic),
                         str(tasks))
                assert r.returncode == code, r.stderr.decode()
                outputs += [r.stdout, r.stderr]
                for db in (sqlite_db, pg_url):
                    r = _run(env, "sync", "--to", f"{kind}-{where}", "--db", db, "--clinic",
                             str(clinic), "--no-progress", str(tasks))
                    assert r.returncode == code, r.stderr.decode()
                    outputs += [r.stdout, r.stderr]
                r = _run(env, "pull", "--from", f"{kind}-{where}", "patient", "--patient", mrn)
                assert r.returncode == code, r.stderr.decode()
                outputs += [r.stdout, r.stderr]
        for db in (sqlite_db, pg_url):  # reading the outbox needs no secret: in-process
            for args in (["status"], ["dead"], ["dead", "--json"]):
                r2 = CliRunner().invoke(build_cli(), ["outbox", *args, "--db", db])
                assert r2.exit_code == 0, r2.output
                outputs += [r2.stdout_bytes, r2.stderr_bytes]
            dead = json.loads(CliRunner().invoke(build_cli(), ["outbox", "dead", "--json",
                                                               "--db", db]).stdout)
            assert len(dead) == 12  # 3 kinds × (401, 500) × 2 tasks
            for item in dead:
                for extra in ([], ["--show-phi"]):
                    r2 = CliRunner().invoke(build_cli(), ["outbox", "dead", "--show",
                                                          str(item["id"]), *extra, "--db", db])
                    assert r2.exit_code == 0, r2.output
                    outputs += [r2.stdout_bytes, r2.stderr_bytes]
        stores = _dump(sqlite_db) + _dump(pg_url)
    issued = list(tokens.issued)
    assert len(issued) >= 3  # SMART really ran (one token per process at least)
    # the echo server really got (and echoed) every credential
    assert basic in echo.seen and f"Bearer {token}" in echo.seen
    assert any(f"Bearer {t}" in echo.seen for t in issued)
    screen = b"\n".join(outputs).decode(errors="replace")
    assert "DEBUG" in screen or "INFO" in screen  # the logs were on
    assert "HTTP 401" in stores and "HTTP 500" in stores  # the failures were kept
    secrets = {"password": password, "token": token, "basic": basic.split()[1],
               "user:password": f"{user}:{password}",
               **{f"smart token {i}": t for i, t in enumerate(issued)}}
    for name, value in secrets.items():
        assert value not in stores, f"{name} in the outbox"
        assert value not in screen, f"{name} on the screen or in the logs"


ORU = ("MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20261128061500-0500||ORU^R01^ORU_R01|"
       "S-{n}|P|2.5.1\rPID|1||MS-31^^^MAPLE^MR||Rivera^Ana||19610402|F\r"
       "ORC|RE|ord-1^MAFHIR|ACC-1^QUESTLAB\r"
       "OBR|1|ord-1^MAFHIR|ACC-1^QUESTLAB|4548-4^Hemoglobin A1c^LN|||20261127092000-0500"
       "|||||||||||||||20261128061000-0500|||F\r"
       "OBX|1|NM|4548-4^Hemoglobin A1c^LN||6.9|%^percent^UCUM|4.0-5.6|H|||F\r")


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_listen_with_credentials_keeps_none(tmp_path: Path, tokens: TokenServer, kind: str):
    """``mafhir listen --to fhir-rest:NAME`` takes credentials from mafhir.toml: a refusing
    EHR that echoes them leaves them neither in the v2 store nor in the DEBUG log."""
    import signal

    from mafhir.hl7v2 import MLLPClient

    user, password, token = "clinic-l", f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    _, clinic, _ = _tasks(tmp_path)
    mrn_system = Clinic.model_validate_json(clinic.read_text()).mrn_namespace
    with EchoServer() as echo:
        cfg = _config(tmp_path, echo.base, echo.base + "/401/fhir", tokens, user)
        env = {**os.environ, "MAFHIR_CONFIG": str(cfg), "T_EHR_PASSWORD": password,
               "T_EHR_TOKEN": token, "MAFHIR_LOG_LEVEL": "DEBUG", "MAFHIR_TZ": "America/Chicago"}
        proc = subprocess.Popen(
            [MAFHIR, "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "s.sqlite"),
             "--to", f"fhir-rest:{kind}-401", "--clinic", str(clinic),
             # the sender's MRN authority is the clinic's (else the result waits for review)
             "--namespace", f"MAPLE={mrn_system}"],
            stderr=subprocess.PIPE, env=env)
        try:
            assert proc.stderr is not None
            lines = []
            while not (line := proc.stderr.readline().decode()).startswith("listening for MLLP"):
                assert line, "".join(lines)
                lines.append(line)
            host, port = line.split()[4].rsplit(":", 1)
            with MLLPClient(host, int(port), timeout=30) as client:
                ack = client.send(ORU.format(n=uuid.uuid4().hex[:8]).encode())
        finally:
            proc.send_signal(signal.SIGINT)
            _, rest = proc.communicate(timeout=30)
    assert b"MSA|" in ack
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert any((token if kind == "bearer" else basic) in s for s in echo.seen)  # it was used
    store = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    seen = "".join(lines).encode() + rest + ack + store
    for value in (password, token, basic):
        assert value.encode() not in seen
