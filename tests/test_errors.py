"""Errors with codes (issue 12 item 1): every Problem in src/ and plugins/ names its code,
every error carries structured fields, one OperationOutcome and one exit-code table read
them, and docs/errors.md lists every code with its ERR-3 and exit status."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mafhir.errors import (
    CODES,
    InputError,
    MafhirError,
    PermanentError,
    PluginError,
    Problem,
    TransientError,
    TransitionError,
    ValidationFailed,
    exit_code,
    operation_outcome,
)
from mafhir.hl7v2.ack import err_code
from mafhir.validation.issues import Issue

ROOT = Path(__file__).resolve().parents[1]


def _problem_calls_without_code() -> list[str]:
    found = []
    for root in [ROOT / "src", *sorted((ROOT / "plugins").glob("*/src"))]:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name == "Problem" and len(node.args) < 3 \
                        and not any(k.arg == "code" for k in node.keywords):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_problem_in_src_or_plugins_is_made_without_its_code():
    assert _problem_calls_without_code() == []


# ---------------------------------------------------------------------- fields
def test_errors_carry_their_code_and_fields():
    err = InputError([Problem("task[1].effective", "needs an offset", "value"),
                      Problem("task[1].pulse", "unknown field", "structure")])
    assert (err.code, err.status, err.retry_after, err.outcome) == ("value", None, None, None)
    assert [p.code for p in err.problems] == ["value", "structure"]
    assert TransientError("down").code == "transient"
    assert PermanentError("refused").code == "processing"
    assert PermanentError("x", code="not-found", status=404).code == "not-found"
    assert TransitionError("action", "cancelled", "checked-in").code == "business-rule"
    with pytest.raises(ValueError, match="unknown error code 'nope'"):
        MafhirError("x", code="nope")


def test_validation_failed_keeps_each_issues_code():
    err = ValidationFailed([Issue("error", "required", "Patient.name", "is required"),
                            Issue("error", "informational", "Patient.id", "odd")])
    assert err.problems == (Problem("Patient.name", "is required", "required"),
                            Problem("Patient.id", "odd", "invalid"))
    assert err.code == "required"


def test_fhir_rest_errors_set_their_fields_where_raised():
    from mafhir_fhir_rest.errors import PermanentHttpError, TransientHttpError

    busy = TransientHttpError("busy", 503, None, "POST /", retry_after=7.0)
    assert (busy.code, busy.status, busy.retry_after) == ("transient", 503, 7.0)
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": "Patient.name missing"}]}
    refused = PermanentHttpError("refused", 400, outcome, "POST /")
    assert (refused.code, refused.status) == ("required", 400)  # the server's own code
    assert refused.outcome == outcome
    assert PermanentHttpError("gone", 404, None, "GET /Patient/1").code == "not-found"
    assert PermanentHttpError("teapot", 418, None, "GET /").code == "processing"


# ---------------------------------------------------------------------- OperationOutcome
def test_one_operation_outcome_for_errors_and_problem_lists():
    err = InputError([Problem("PID-7", "not a date", "value"),
                      Problem("", "no zone configured", "business-rule")])
    assert operation_outcome(err) == {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "value", "diagnostics": "not a date",
         "expression": ["PID-7"]},
        {"severity": "error", "code": "business-rule", "diagnostics": "no zone configured"}]}
    assert operation_outcome([Problem("OBX[1]-5", "kept without units", "incomplete")],
                             "warning")["issue"] == [
        {"severity": "warning", "code": "incomplete", "diagnostics": "kept without units",
         "expression": ["OBX[1]-5"]}]
    assert operation_outcome(TransientError("EHR down"))["issue"] == [
        {"severity": "error", "code": "transient", "diagnostics": "EHR down"}]


def test_an_unexpected_error_becomes_processing_without_its_text():
    try:
        {}["Doe^Jane 1980-01-01"]
    except KeyError as exc:
        (issue,) = operation_outcome(exc)["issue"]
    assert issue["code"] == "processing"
    assert issue["diagnostics"].startswith("KeyError at tests/test_errors.py:")
    assert "Doe" not in issue["diagnostics"] and "1980" not in issue["diagnostics"]


# ---------------------------------------------------------------------- exit codes
@pytest.mark.parametrize(("error", "code"), [
    (None, 0),
    (InputError("bad"), 2),
    (PluginError("broken plugin"), 2),
    (PermanentError("refused"), 1),
    (ValidationFailed([]), 1),
    (TransientError("down"), 75),
    (PermanentError("the pharmacy is closed for now", code="transient"), 75),
    (InputError([Problem("task[3]", "internal error mapping 'vitals'", "processing")]), 1),
    (RuntimeError("a bug"), 1),
])
def test_exit_codes_come_from_one_table(error, code):
    assert exit_code(error) == code


# ---------------------------------------------------------------------- the documentation
def _doc_rows() -> dict[str, tuple[str, str, str]]:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    section = text.split("## The codes", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for m in re.finditer(r"^\| `([a-z-]+)` \| (.+?) \| (\d{3}) [^|]+ \| ([0-9 /]+) \|$",
                         section, re.M):
        rows[m.group(1)] = (m.group(2), m.group(3), m.group(4).strip())
    return rows


def test_docs_list_every_code_with_its_err_3_and_exit_status():
    rows = _doc_rows()
    assert list(rows) == list(CODES)
    for code, (meaning, err3, exits) in rows.items():
        assert meaning == CODES[code]
        assert err3 == err_code(Problem("", "", code))[0], code
        as_input = exit_code(InputError([Problem("", "", code)]))
        from_server = exit_code(PermanentError("", code=code))
        expected = str(as_input) if as_input == from_server else f"{as_input} / {from_server}"
        assert exits == expected, code


def test_an_mllp_destination_without_its_message_type_is_a_value_error():
    from mafhir.connectors.mllp import MLLPConnector

    with pytest.raises(PermanentError) as err:
        MLLPConnector("127.0.0.1:2575")
    assert err.value.code == "value" and exit_code(err.value) == 1
