"""The outbox keeps no credential and shows no PHI unasked; bad ids and destinations are
clear errors (issue 11, items 10, 12 and 19), on SQLite and on PostgreSQL."""

from __future__ import annotations

import getpass
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mafhir.cli.main import build_cli
from mafhir.errors import InputError
from mafhir.outbox.model import NewItem
from mafhir.outbox.store import open_store
from outbox_helpers import outbox_url, postgres_database

BACKENDS = ["sqlite", "postgres"]
MRN = "MS-40417"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False, env=env)


def one_line_error(result: Result) -> str:
    """The whole of stderr: one ``error:`` line, no traceback, no SQL."""
    err = result.stderr.strip()
    assert result.exit_code == 2, result.output
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "INSERT" not in err and "SELECT" not in err and "UPDATE" not in err
    return err


# ---------------------------------------------------------------- the redaction itself
def test_redaction_of_shapes_and_of_the_secrets_held():
    """Expectations written by hand from RFC 7235/6750 header shapes and RFC 7519 JWTs."""
    from mafhir.redact import REDACTED, redact_json, redact_text, remember_secret

    jwt = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJjbGluaWMifQ.c2lnbmF0dXJlLXZhbHVl"
    assert redact_text("Authorization: Bearer abc.DEF-123 was refused") == \
        f"Authorization: {REDACTED}"
    assert redact_text("got Basic dXNlcjpwYXNz here") == f"got Basic {REDACTED} here"
    assert redact_text(f"assertion {jwt} expired") == f"assertion {REDACTED} expired"
    assert redact_text("grant password=hunter2x&scope=a") == f"grant password={REDACTED}&scope=a"
    assert redact_text("see https://bob:pw1@ehr.example/fhir") == \
        f"see https://{REDACTED}@ehr.example/fhir"
    # ordinary words stay: a message about auth is not a credential
    for text in ("auth must be none, basic, bearer or smart", "Basic authentication failed",
                 "EHR_TOKEN: environment variable is not set or empty"):
        assert redact_text(text) == text
    remember_secret("plain-secret-41x")  # a bare value, in any shape a server wraps it
    assert redact_text("echo: plain-secret-41x!") == f"echo: {REDACTED}!"
    assert redact_text("q=plain-secret-41x") == f"q={REDACTED}"
    doc = {"resourceType": "OperationOutcome", "access_token": "zz-top-99",
           "issue": [{"diagnostics": "you sent Bearer abc.DEF-123"}]}
    assert redact_json(doc) == {"resourceType": "OperationOutcome", "access_token": REDACTED,
                                "issue": [{"diagnostics": f"you sent Bearer {REDACTED}"}]}


def test_issued_tokens_are_bounded_and_configured_secrets_are_kept():
    """A worker that runs for months: its renewed tokens do not pile up without end."""
    from mafhir.redact import REDACTED, redact_text, remember_secret

    remember_secret("configured-pw-812")
    tokens = [f"issued-{i:06d}-x" for i in range(1100)]
    for t in tokens:
        remember_secret(t, expiring=True)
    assert redact_text("configured-pw-812") == REDACTED  # stays for good
    assert redact_text(tokens[-1]) == REDACTED
    assert redact_text(tokens[0]) == tokens[0]  # long expired, let go (1,024 kept)


# ---------------------------------------------------------------- item 10: URLs
@pytest.mark.parametrize("to", ["http://clinic:hunter2-pw@127.0.0.1:9/fhir",
                                "https://clinic@127.0.0.1:9/fhir",
                                "mllp:clinic:hunter2-pw@127.0.0.1:2575/OML^O21",
                                "http://127.0.0.1:9/fhir?access_token=hunter2-pw",
                                # spellings and places a token takes in real URLs
                                "http://127.0.0.1:9/fhir?access-token=hunter2-pw",
                                "http://127.0.0.1:9/fhir?accessToken=hunter2-pw",
                                "http://127.0.0.1:9/fhir#access_token=hunter2-pw",
                                "http://127.0.0.1:9/fhir?subscription-key=hunter2-pw",
                                "http://127.0.0.1:9/fhir?sv=2022&sig=hunter2-pw"])
def test_credentials_in_the_to_url_are_refused_and_never_stored(tmp_path: Path, to: str):
    task = {"task": "vitals", "id": "v-1", "patient": {"mrn": MRN},
            "effective": "2026-11-27T10:35:00-05:00", "heart_rate": {"value": 70}}
    (tmp_path / "t.ndjson").write_text(json.dumps(task) + "\n")
    db = tmp_path / "o.db"
    result = cli("sync", "--to", to, "--db", str(db), "--no-progress", str(tmp_path / "t.ndjson"))
    err = one_line_error(result)
    assert "credentials in a URL (user:password@, ?access_token=) are refused" in err
    assert "mafhir.toml" in err
    assert "password = \"${ENV_VAR}\"" in err
    assert "hunter2" not in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM outbox_items").fetchone() == (0,)
    assert b"hunter2" not in db.read_bytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_store_itself_refuses_a_destination_with_userinfo(backend: str, tmp_path: Path):
    with outbox_url(backend, tmp_path) as url:
        store = open_store(url)
        try:
            with pytest.raises(InputError) as info:
                store.enqueue([NewItem("https://u:p4ss@ehr.example/fhir", "k", "i", b"{}")])
            assert info.value.problems[0].code == "security"
            assert "p4ss" not in str(info.value)
            assert store.counts() == {}
        finally:
            store.close()


def test_a_database_password_on_the_command_line_is_refused_and_never_shown(tmp_path: Path):
    result = cli("outbox", "status", "--db", "postgresql://postgres:db-pw-77@127.0.0.1:5432/x")
    err = one_line_error(result)
    assert "PGPASSWORD" in err and "db-pw-77" not in result.output
    with postgres_database() as url:  # trust auth: the password is accepted and unused
        with_pw = url.replace("postgres@", "postgres:db-pw-77@")
        result = cli("outbox", "status", env={"MAFHIR_OUTBOX": with_pw})
        assert result.exit_code == 0, result.output
        assert "db-pw-77" not in result.output and "<redacted>" in result.output


# ---------------------------------------------------------------- item 12: PHI
def _dead_letter_with_phi(url: str) -> int:
    store = open_store(url)
    try:
        store.enqueue([NewItem("https://ehr.example/fhir", "okey", "idem", b"{}", "day.ndjson")])
        (item,) = store.claim("w")
        outcome = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "business-rule", "expression": ["Patient.identifier"],
            "diagnostics": f"Patient with MRN {MRN} (Quillfeather, Rosa) is merged"}]}
        store.failed(item, "w", 0.0, "POST transaction: HTTP 422 unprocessable", 422, None,
                     json.dumps(outcome))
        return item.id
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_show_hides_the_servers_text_unless_show_phi_which_is_audited(backend: str,
                                                                           tmp_path: Path):
    with outbox_url(backend, tmp_path) as url:
        item_id = _dead_letter_with_phi(url)
        shown = cli("outbox", "dead", "--show", str(item_id), "--db", url)
        assert shown.exit_code == 0, shown.output
        assert MRN not in shown.output and "Quillfeather" not in shown.output
        doc = json.loads(shown.stdout)
        assert doc["outcome"]["issue"] == [{"severity": "error", "code": "business-rule",
                                            "expression": ["Patient.identifier"]}]
        assert "--show-phi" in doc["outcome"]["hidden"]
        store = open_store(url)
        try:
            assert store.audit_of(item_id) == []  # nothing shown, nothing to audit
        finally:
            store.close()

        full = cli("outbox", "dead", "--show", str(item_id), "--show-phi", "--db", url)
        assert full.exit_code == 0, full.output
        assert MRN in json.loads(full.stdout)["outcome"]["issue"][0]["diagnostics"]
        store = open_store(url)
        try:
            (row,) = store.audit_of(item_id)
        finally:
            store.close()
        event = json.loads(row["resource"])
        assert row["resource_type"] == "AuditEvent" and row["item_id"] == item_id
        assert event["type"]["code"] == "110110" and event["action"] == "R"
        assert event["agent"][0]["who"]["display"].startswith(getpass.getuser() + "@")
        assert event["entity"][0]["what"]["identifier"]["value"] == str(item_id)
        assert event["recorded"].endswith("Z")
        assert MRN not in row["resource"]


def test_show_phi_needs_show(tmp_path: Path):
    err = one_line_error(cli("outbox", "dead", "--show-phi", "--db", str(tmp_path / "o.db")))
    assert "--show-phi: needs --show ID" in err


# ---------------------------------------------------------------- item 19: clear errors
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_id_beyond_the_column_is_a_clear_error(backend: str, tmp_path: Path):
    with outbox_url(backend, tmp_path) as url:
        open_store(url).close()
        for args in (["outbox", "replay", "9223372036854775808"],
                     ["outbox", "discard", "9223372036854775808", "--reason", "x"],
                     ["outbox", "dead", "--show", "9223372036854775808"],
                     ["outbox", "replay", "0"]):
            err = one_line_error(cli(*args, "--db", url))
            assert "outbox ids run from 1 to 9223372036854775807" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_destination_longer_than_the_outbox_keeps_is_refused_before_sql(backend: str,
                                                                            tmp_path: Path):
    to = "http://127.0.0.1:9/fhir/" + "x" * 600
    task = {"task": "vitals", "id": "v-1", "patient": {"mrn": MRN},
            "effective": "2026-11-27T10:35:00-05:00", "heart_rate": {"value": 70}}
    (tmp_path / "t.ndjson").write_text(json.dumps(task) + "\n")
    with outbox_url(backend, tmp_path) as url:
        err = one_line_error(cli("sync", "--to", to, "--db", url, "--no-progress",
                                 str(tmp_path / "t.ndjson")))
        assert "--to: is 624 characters long; a destination has at most 500" in err
        store = open_store(url)
        try:
            assert store.counts() == {}
        finally:
            store.close()



@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_from_before_the_refusal_never_show_their_credentials(backend: str,
                                                                   tmp_path: Path):
    """An outbox written by an older mafhir may hold ``user:password@`` in a destination."""
    from sqlalchemy import insert

    from mafhir.outbox.schema import items

    with outbox_url(backend, tmp_path) as url:
        store = open_store(url)
        try:
            with store._tx() as conn:
                conn.execute(insert(items).values(
                    destination="https://clinic:old-pw-55@ehr.example/fhir", okey="k",
                    idem_key="i", payload=b"{}", source="day.ndjson", kind="vitals",
                    state="dead", attempts=1, reason="HTTP 401", next_at=0.0,
                    created_at=1.0, updated_at=1.0))
            (item,) = store.items_in("dead")
        finally:
            store.close()
        for args in (["status"], ["status", "--json"], ["dead"], ["dead", "--json"],
                     ["dead", "--show", str(item.id)]):
            result = cli("outbox", *args, "--db", url, env={"COLUMNS": "400"})  # no folding
            assert result.exit_code == 0, result.output
            assert "old-pw-55" not in result.output, args
            assert "ehr.example" in result.output or "--json" in args, args


@pytest.mark.parametrize("to", ["http://127.0.0.1:9/fhir?_count=10&identifier=x|1",
                                "https://ehr.example/fhir/R4#section",
                                "mllp:127.0.0.1:2575/OML^O21"])
def test_urls_without_credentials_are_not_mistaken_for_them(to: str):
    from mafhir.redact import carries_credentials
    assert not carries_credentials(to)
