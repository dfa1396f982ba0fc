"""mafhir.toml that refuses mistakes, URLs without credentials, errors and logs without
secrets or PHI (issue 11, items 10, 11, 13, 14 and 19)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from mafhir.cli.main import build_cli
from mafhir.errors import InputError
from mafhir_fhir_rest.config import client_for
from mafhir_fhir_rest.errors import http_error

MAFHIR = str(Path(sys.executable).parent / "mafhir")
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": []}
VITALS_LINE = json.dumps({
    "task": "vitals", "id": "v-1", "effective": "2026-11-27T10:35:00-05:00",
    "patient": {"mrn": "H-1", "family": "Quillfeather", "given": ["Rosa"], "gender": "female",
                "birth_date": "1984-07-19"},
    "heart_rate": {"value": 70}}) + "\n"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False, env=env)


def errors_of(result: Result) -> list[str]:
    """stderr as its ``error:`` lines; exit 2 and no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines), result.stderr
    return lines


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "b.json").write_text(json.dumps(BUNDLE))
    return tmp_path / "mafhir.toml"


def send(cfg: Path) -> Result:
    return cli("send", "--to", "ehr", "--config", str(cfg), str(cfg.parent / "b.json"))


# ---------------------------------------------------------------- item 14
def test_an_unknown_key_is_named_with_its_file_and_the_nearest_known_key(cfg: Path):
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "basic"\nusername = "clinic"\nPassword = "hunter2-literal"\n'
                   'pasword_env = "EHR_PW"\n')
    lines = errors_of(send(cfg))
    where = f"error: {cfg}: destinations.ehr"
    assert f"{where}.Password: unknown key (did you mean 'password'?)" in lines
    assert f"{where}.pasword_env: unknown key (did you mean 'password_env'?)" in lines
    assert any(line.startswith(f"{where}.Password: looks like a secret written in the file")
               and "${ENV_VAR}" in line for line in lines)
    assert "hunter2-literal" not in "\n".join(lines)


def test_unknown_tables_and_top_level_keys_are_errors(cfg: Path):
    cfg.write_text('token = "abc"\n[destination.ehr]\nurl = "https://ehr.example.org/fhir"\n')
    lines = errors_of(send(cfg))
    assert f"error: {cfg}: destination: unknown table (did you mean 'destinations'?)" in lines
    assert any(line.startswith(f"error: {cfg}.token: unknown key") for line in lines)
    assert "abc" not in "\n".join(line.split(": ", 1)[1] for line in lines)


def test_a_literal_secret_is_refused_and_an_env_reference_is_used(
        cfg: Path, monkeypatch: pytest.MonkeyPatch):
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "basic"\nusername = "clinic"\npassword = "hunter2-literal"\n')
    (line,) = errors_of(send(cfg))
    assert line.startswith(f"error: {cfg}: destinations.ehr.password: looks like a secret")
    assert "hunter2-literal" not in line
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "basic"\nusername = "clinic"\npassword = "${T_EHR_PW}"\n')
    monkeypatch.setenv("T_EHR_PW", "from-the-env-9")
    client = client_for("ehr", str(cfg))
    prepared = client.auth(requests.Request("GET", "https://ehr.example.org/fhir").prepare())
    assert prepared.headers["Authorization"] == "Basic Y2xpbmljOmZyb20tdGhlLWVudi05"  # by hand
    monkeypatch.delenv("T_EHR_PW")
    with pytest.raises(InputError, match="T_EHR_PW: environment variable is not set"):
        client_for("ehr", str(cfg))


@pytest.mark.parametrize(("line", "expected"), [
    ('max_attempts = "abc"', "destinations.ehr.max_attempts: Input should be a valid integer"),
    ("max_attempts = 0", "destinations.ehr.max_attempts: Input should be greater than or equal "
                         "to 1"),
    ('verify = "yes"\npage_size = "ten"', "destinations.ehr.page_size: Input should be a valid "
                                          "integer"),
    ('auth = "kerberos"', "destinations.ehr.auth: Input should be 'none', 'basic', 'bearer' or "
                          "'smart'"),
])
def test_values_of_the_wrong_type_are_one_line_errors(cfg: Path, line: str, expected: str,
                                                      tmp_path: Path):
    cfg.write_text(f'[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n{line}\n')
    (err,) = errors_of(send(cfg))
    assert err == f"error: {cfg}: {expected}"
    # a task that maps: an empty file is refused for itself before the destination is read
    (tmp_path / "one.ndjson").write_text(VITALS_LINE)
    (err,) = errors_of(cli("sync", "--to", "ehr", "--db", str(tmp_path / "o.db"),
                           "--no-progress", str(tmp_path / "one.ndjson"),
                           env={"MAFHIR_CONFIG": str(cfg)}))  # sync finds it by env
    assert err == f"error: {cfg}: {expected}"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://ehr.example.org/fhir",
                                 "https://clinic:pw-in-url@ehr.example.org/fhir",
                                 "https://ehr.example.org/fhir?_format=json&api_key=pw-in-url"])
def test_a_url_that_is_not_a_credential_free_http_url_is_refused(cfg: Path, url: str):
    cfg.write_text(f'[destinations.ehr]\nurl = "{url}"\n')
    (err,) = errors_of(send(cfg))
    assert err.startswith(f"error: {cfg}: destinations.ehr.url: must ")
    assert "pw-in-url" not in err and "passwd" not in err


# ---------------------------------------------------------------- item 10
@pytest.mark.parametrize("args", [["send", "--to"], ["pull", "patient", "--patient", "X",
                                                      "--from"]])
def test_send_and_pull_refuse_credentials_in_the_url(cfg: Path, args: list[str]):
    url = "https://clinic:pw-in-url@ehr.example.org/fhir"
    result = cli(*args, url, *([str(cfg.parent / "b.json")] if args[0] == "send" else []))
    (err,) = errors_of(result)
    assert "credentials in a URL (user:password@, ?access_token=) are refused" in err
    assert "mafhir.toml" in err
    assert "pw-in-url" not in result.output


# ---------------------------------------------------------------- item 11
def test_a_401_that_echoes_the_authorization_header_keeps_no_credential():
    outcome = {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "login",
        "diagnostics": "Authorization: Bearer eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJ4In0.c2ln "
                       "is not valid"}], "authorization": "Basic Y2xpbmljOmh1bnRlcjI="}
    err = http_error(401, outcome, "POST transaction")
    text = str(err) + json.dumps(err.outcome)
    assert "eyJ" not in text and "Y2xpbmljOmh1bnRlcjI=" not in text
    assert err.outcome["authorization"] == "<redacted>"
    assert str(err) == "POST transaction: HTTP 401 not authenticated — error login: " \
                       "Authorization: <redacted>"


# ---------------------------------------------------------------- item 13
@pytest.fixture
def logging_restored():
    """main() sets logging up for the process; put it back for the tests that follow."""
    import contextlib
    import importlib

    factory = logging.getLogRecordFactory()
    levels = {n: logging.getLogger(n).level for n in ("urllib3", "requests", "sqlalchemy")}
    yield
    logging.setLogRecordFactory(factory)
    with contextlib.suppress(ImportError):  # absent before the fix
        importlib.import_module("mafhir.cli.logs")._installed = False
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_debug_logging_does_not_carry_the_mrn_in_library_lines(
        fhir_base_url: str, caplog: pytest.LogCaptureFixture, logging_restored: None):
    """A user's DEBUG logging (here pytest's) around ``mafhir pull``: urllib3 would log
    ``GET /fhir/Patient?identifier=…|MRN``; mafhir's own lines name only the type."""
    from mafhir.cli.main import main

    mrn = f"MS-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SystemExit) as exit_:
        main(["pull", "--from", fhir_base_url, "patient", "--patient",
              f"urn:mafhir:test:{uuid.uuid4()}|{mrn}"])
    assert exit_.value.code in (0, None)
    assert any(r.name == "mafhir_fhir_rest.http" and "GET Patient -> 200" in r.getMessage()
               for r in caplog.records)
    assert mrn not in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]


@pytest.mark.parametrize("libraries", ["", "1"])
def test_mafhir_log_level_debug_in_a_real_process(fhir_base_url: str, libraries: str):
    mrn = f"MS-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "MAFHIR_LOG_LEVEL": "DEBUG", "MAFHIR_LOG_LIBRARIES": libraries}
    r = subprocess.run([MAFHIR, "pull", "--from", fhir_base_url, "patient", "--patient",
                        f"urn:mafhir:test:{uuid.uuid4()}|{mrn}"], env=env, capture_output=True,
                       timeout=60, check=False)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "INFO mafhir_fhir_rest.http: GET Patient -> 200" in err
    assert mrn not in err
    # asked for, library lines come, with their query values blanked
    assert ("DEBUG urllib3" in err) == (libraries == "1")
    if libraries:
        assert "/Patient?identifier=…" in err


def test_a_wrong_log_level_is_a_clear_error():
    r = subprocess.run([MAFHIR, "plugins"], env={**os.environ, "MAFHIR_LOG_LEVEL": "LOUD"},
                       capture_output=True, timeout=60, check=False)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == \
        "error: MAFHIR_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR"


def test_secret_and_key_problems_carry_their_codes(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    from mafhir_fhir_rest.auth import Secret, SigningKey

    monkeypatch.delenv("T_NOT_SET", raising=False)
    cases = [(lambda: Secret.from_env("T_NOT_SET"), "required"),
             (lambda: Secret.from_file(tmp_path / "absent"), "not-found"),
             (lambda: SigningKey.from_pem(b"not a key"), "value"),
             (lambda: SigningKey.from_jwks({"keys": []}), "conflict")]
    for make, code in cases:
        with pytest.raises(InputError) as info:
            make()
        assert [p.code for p in info.value.problems] == [code]


@pytest.mark.parametrize("token", ["…", "tok en\n", "jeton-é"])
def test_a_token_no_http_header_can_carry_is_one_line_naming_its_variable(cfg: Path, token):
    """A '…' pasted as the token crashed deep in http.client (UnicodeEncodeError)."""
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "bearer"\ntoken = "${EHR_TOKEN_TEST}"\n')
    (err,) = errors_of(cli("send", "--to", "ehr", "--config", str(cfg),
                           str(cfg.parent / "b.json"), env={"EHR_TOKEN_TEST": token}))
    assert err.startswith("error: env:EHR_TOKEN_TEST: the bearer token holds characters")
    assert token.strip() not in err
