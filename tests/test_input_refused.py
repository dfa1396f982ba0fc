"""Input that is refused rather than silently changed (issue 11, items 15-19; issue 10,
item 11): duplicate keys, numbers a float cannot keep, invisible characters in
identifiers, a demo folder holding someone else's files, paths and nesting that used to
end in a traceback, and a UTF-8 BOM.

Each refusal is checked for the field it names, its code, and for not echoing the value.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from mafhir.io import iter_documents
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.strictjson import MAX_DEPTH

ROOT = Path(__file__).resolve().parents[1]
MAFHIR = str(Path(sys.executable).parent / "mafhir")
CLINIC_FILE = ROOT / "fixtures" / "clinic-day" / "clinic.json"
BOM = b"\xef\xbb\xbf"

VITALS = ('{"task": "vitals", "id": "%s", "patient": {"mrn": "MS-1"}, '
          '"effective": "2026-11-27T09:04:00-05:00", %s}')


def mafhir(*args: str, stdin: bytes | None = None, cwd: Path | None = None):
    return subprocess.run([MAFHIR, *args], input=stdin, capture_output=True, cwd=cwd,
                          timeout=180)


def run(registry, ctx, text: bytes) -> list[Mapped | Failed]:
    return list(Pipeline(registry, ctx).run(iter_documents(io.BytesIO(text), "in.ndjson")))


def observation_values(bundle: dict) -> list:
    return [e["resource"]["valueQuantity"]["value"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Observation" and "valueQuantity" in e["resource"]]


# ---------------------------------------------------------------- item 15: duplicate keys
DUPLICATED = (b'{"task": "vitals", "id": "dupk-1", "patient": {"mrn": "MS-1"}, '
              b'"effective": "2026-11-27T09:04:00-05:00", '
              b'"heart_rate": {"value": 78, "value": 250}, "id": "dupk-2"}')
FINE = VITALS.encode() % (b"fine-1", b'"heart_rate": {"value": 64}')


def test_duplicate_keys_refuse_the_task_naming_each_key(registry, ctx):
    failed, mapped = run(registry, ctx, DUPLICATED + b"\n" + FINE + b"\n")
    assert isinstance(failed, Failed) and isinstance(mapped, Mapped)  # the other goes on
    assert [(p.location, p.code) for p in failed.problems] == [
        ("task[0].id", "structure"), ("task[0].heart_rate.value", "structure")]
    assert all("more than once" in p.message for p in failed.problems)
    assert not any(v in str(p) for p in failed.problems for v in ("78", "250", "dupk"))


def test_duplicate_keys_in_a_json_list_refuse_only_that_item(registry, ctx):
    results = run(registry, ctx, b"[" + FINE + b", " + DUPLICATED + b"]")
    assert isinstance(results[0], Mapped)
    assert isinstance(results[1], Failed)
    assert {p.location for p in results[1].problems} == {"task[1].id",
                                                         "task[1].heart_rate.value"}


def test_a_colon_inside_a_string_is_no_duplicate(registry, ctx):
    """The fast test counts ``"…":`` marks; a quote and colon inside a value only sends the
    document to the exact reading, which finds no duplicate and maps it."""
    task = json.loads(FINE)
    task["patient"] = {"mrn": "MS-1", "family": 'O"Neil": x', "given": ['a": b'],
                       "gender": "female"}
    (result,) = run(registry, ctx, json.dumps(task).encode())
    assert isinstance(result, Mapped), getattr(result, "problems", None)


def test_map_refuses_duplicate_keys_with_exit_2(tmp_path):
    source = tmp_path / "dup.ndjson"
    source.write_bytes(DUPLICATED + b"\n")
    proc = mafhir("map", str(source))
    assert proc.returncode == 2 and proc.stdout == b""
    err = proc.stderr.decode()
    assert "error: task[0].heart_rate.value: appears more than once" in err
    assert "250" not in err and "Traceback" not in err


def test_validate_refuses_a_fhir_document_with_a_duplicate_key(tmp_path):
    doc = (b'{"resourceType": "Patient", "gender": "male", "gender": "female", '
           b'"name": [{"family": "X"}]}')
    (tmp_path / "p.json").write_bytes(doc)
    proc = mafhir("validate", str(tmp_path / "p.json"))
    assert proc.returncode == 1
    assert "Patient.gender: appears more than once" in proc.stdout.decode()


# ---------------------------------------------------------------- item 16: precision
@pytest.mark.parametrize("number", ["212.000000000000000001", "1e-400", "72.00000000000000001",
                                    "0.1000000000000000055511151231257827"])
def test_a_number_a_float_cannot_keep_is_refused_naming_the_field(registry, ctx, number):
    text = VITALS % ("prec-1", f'"weight": {{"value": {number}, "unit": "kg"}}')
    (result,) = run(registry, ctx, text.encode())
    assert isinstance(result, Failed)
    (problem,) = result.problems
    assert (problem.location, problem.code) == ("task[0].weight.value", "value")
    assert "more digits" in problem.message and number not in str(problem)


def test_what_a_float_holds_exactly_is_taken(registry, ctx):
    """0.30000000000000004 has 17 digits, but they are exactly a float's: nothing is lost."""
    text = VITALS % ("prec-4", '"weight": {"value": 80.30000000000001, "unit": "kg"}')
    (result,) = run(registry, ctx, text.encode())
    assert isinstance(result, Mapped)
    assert result.task.weight.value == 80.30000000000001


def test_fifteen_digits_are_kept_digit_for_digit(tmp_path):
    text = VITALS % ("prec-2", '"weight": {"value": 95.0000000000001, "unit": "kg"}, '
                     '"height": {"value": 180.25, "unit": "cm"}')
    (tmp_path / "t.json").write_text(text)
    proc = mafhir("map", str(tmp_path / "t.json"))
    assert proc.returncode == 0, proc.stderr
    values = observation_values(json.loads(proc.stdout, parse_float=Decimal))
    assert Decimal("95.0000000000001") in values and Decimal("180.25") in values


def test_a_decimal_handed_to_the_task_model_is_not_rounded():
    from pydantic import ValidationError

    from mafhir.tasks.vitals import VitalsTask

    task = json.loads(VITALS % ("prec-3", '"heart_rate": {"value": 70}'))
    task["weight"] = {"value": Decimal("212.000000000000000001"), "unit": "kg"}
    with pytest.raises(ValidationError) as err:
        VitalsTask.model_validate(task)
    assert err.value.errors()[0]["loc"][:2] == ("weight", "value")


# ---------------------------------------------------------------- item 17: invisible text
@pytest.mark.parametrize(("mrn", "code_point"), [
    ("MS-\u202e10022", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("MS-10022\u200b", "U+200B (ZERO WIDTH SPACE)"),
    ("MS-\x0010022", "U+0000 (NULL)"),
    ("MS-\x1b10022", "U+001B (ESCAPE)"),
    ("MS-\ufeff10022", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
])
def test_an_invisible_character_in_an_mrn_is_refused_by_code_point(registry, ctx, mrn,
                                                                    code_point):
    task = json.loads(FINE)
    task["patient"]["mrn"] = mrn
    (result,) = run(registry, ctx, json.dumps(task).encode())
    assert isinstance(result, Failed)
    (problem,) = result.problems
    assert (problem.location, problem.code) == ("task[0].patient.mrn", "security")
    assert code_point in problem.message and "10022" not in str(problem)


def test_invisible_characters_in_other_identifiers_and_names(registry, ctx):
    day = (ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text().splitlines()
    coverage = next(t for t in map(json.loads, day) if t["task"] == "coverage")
    coverage["member_id"] = "XJH\u200d123"
    coverage["patient"] = {**coverage["patient"], "family": "Bell\u202e", "given": ["Ann"],
                           "gender": "female"}
    (result,) = run(registry, ctx, json.dumps(coverage).encode())
    assert isinstance(result, Failed)
    found = {p.location: p.message for p in result.problems}
    assert "U+200D (ZERO WIDTH JOINER)" in found["task[0].member_id"]
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in found["task[0].patient.family"]


def test_names_are_written_in_nfc(registry, ctx):
    task = json.loads(FINE)
    task["patient"] = {"mrn": "MS-1", "family": "Nguye\u0302\u0303n", "given": ["Zoe\u0308"],
                       "gender": "female"}
    (result,) = run(registry, ctx, json.dumps(task).encode())
    assert isinstance(result, Mapped)
    (patient,) = [e.resource for e in result.entries if e.resource["resourceType"] == "Patient"]
    assert patient["name"][0]["family"] == "Nguy\u1ec5n"  # one precomposed letter
    assert patient["name"][0]["given"] == ["Zo\u00eb"]


def test_a_decomposed_mrn_is_refused_not_a_second_patient(registry, ctx):
    task = json.loads(FINE)
    task["patient"]["mrn"] = "JOSE\u0301-1"
    (result,) = run(registry, ctx, json.dumps(task).encode())
    assert isinstance(result, Failed)
    assert "U+0301 (COMBINING ACUTE ACCENT)" in result.problems[0].message


# ---------------------------------------------------------------- item 18: the demo folder
def test_demo_refuses_a_folder_with_files_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    (out / "bundles").mkdir(parents=True)
    (out / "bundles" / "keep.json").write_text('{"mine": true}')
    (out / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "mine"}\n')
    proc = mafhir("demo", "--out", str(out))
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Patient.ndjson" in err and "bundles/keep.json" in err and "--force" in err
    assert (out / "bundles" / "keep.json").read_text() == '{"mine": true}'
    assert (out / "Patient.ndjson").read_text() == '{"resourceType": "Patient", "id": "mine"}\n'
    assert sorted(p.name for p in out.rglob("*")) == ["Patient.ndjson", "bundles", "keep.json"]


def test_demo_with_force_uses_the_folder_and_then_owns_what_it_wrote(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    forced = mafhir("demo", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (out / "notes.txt").read_text() == "mine"
    again = mafhir("demo", "--out", str(out))  # notes.txt is still not the demo's
    assert again.returncode == 2 and "notes.txt" in again.stderr.decode()
    (out / "notes.txt").unlink()
    assert mafhir("demo", "--out", str(out)).returncode == 0  # its own files: fine


# ---------------------------------------------------------------- item 19: no tracebacks
def _one_line_error(proc, *names: str) -> str:
    # the one error line; a warning (no clinic configured) may come before it
    err = "".join(x for x in proc.stderr.decode().splitlines(keepends=True)
                  if not x.startswith("warning: no clinic is configured"))
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    for name in names:
        assert name in err
    return err


def test_demo_out_under_a_file(tmp_path):
    (tmp_path / "FILE").write_text("x")
    _one_line_error(mafhir("demo", "--out", "FILE/sub", cwd=tmp_path), "FILE/sub")


def test_demo_out_proc_self(tmp_path):
    _one_line_error(mafhir("demo", "--out", "/proc/self"), "/proc/self")
    _one_line_error(mafhir("demo", "--out", "/proc/self", "--force"), "/proc/self")


def test_map_output_under_a_file(tmp_path):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "t.json").write_bytes(FINE)
    _one_line_error(mafhir("map", "-o", "FILE/x.json", "t.json", cwd=tmp_path), "FILE/x.json")
    assert (tmp_path / "FILE").read_text() == "x"


def test_a_clinic_nested_5000_deep(tmp_path):
    (tmp_path / "clinic.json").write_text('{"a":' * 5000 + "1" + "}" * 5000)
    (tmp_path / "t.json").write_bytes(FINE)
    _one_line_error(mafhir("map", "--clinic", "clinic.json", "t.json", cwd=tmp_path),
                    "clinic.json")
    (tmp_path / "clinic.toml").write_text("a = " + "[" * 5000 + "]" * 5000)
    _one_line_error(mafhir("map", "--clinic", "clinic.toml", "t.json", cwd=tmp_path),
                    "clinic.toml")


def test_a_task_nested_deeper_than_the_limit_names_the_task(registry, ctx):
    task = json.loads(FINE)
    task["note"] = json.loads('{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH)
    (result,) = run(registry, ctx, json.dumps(task).encode())
    assert isinstance(result, Failed)
    (problem,) = result.problems
    assert problem.location == "task[0]" and problem.code == "too-long"


# ---------------------------------------------------------------- issue 10, item 11: BOM
def test_map_reads_ndjson_and_json_lists_with_a_bom(tmp_path):
    (tmp_path / "t.ndjson").write_bytes(BOM + FINE + b"\n" + FINE.replace(b"fine-1", b"f-2"))
    (tmp_path / "t.json").write_bytes(BOM + b"[" + FINE + b"]")
    for name in ("t.ndjson", "t.json"):
        proc = mafhir("map", "--clinic", str(CLINIC_FILE), name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert observation_values(json.loads(proc.stdout))


def test_validate_and_convert_read_a_bundle_with_a_bom(tmp_path):
    order = {"task": "lab_order", "id": "ord-1",
             "patient": {"mrn": "MS-1", "family": "Lab", "given": ["Ann"], "gender": "female",
                         "birth_date": "1961-04-02"},
             "ordered": "2026-11-27T09:10:00-05:00",
             "requester": {"npi": "1234567893", "family": "Reyes", "given": ["Lena"]},
             "tests": [{"name": "hba1c"}], "priority": "routine"}
    mapped = mafhir("map", "--clinic", str(CLINIC_FILE), "-", stdin=json.dumps(order).encode())
    assert mapped.returncode == 0, mapped.stderr
    (tmp_path / "b.json").write_bytes(BOM + mapped.stdout)
    checked = mafhir("validate", "b.json", cwd=tmp_path)
    # dom-6 (narrative) is a best-practice warning on each resource; mafhir writes none
    lines = [line for line in checked.stdout.decode().splitlines() if "dom-6" not in line]
    assert checked.returncode == 0 and lines == ["b.json: ok"]
    converted = mafhir("convert", "--to", "hl7v2", "--message", "OML^O21", "--clinic",
                       str(CLINIC_FILE), "b.json", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.startswith(b"MSH|") and b"\nORC|NW|ord-1" in converted.stdout


# ---------------------------------------------------------------- the fast test's edges
@pytest.mark.parametrize(("raw", "path", "code"), [
    (b'{"id" : "a", "id": "b"}', ("id",), "structure"),        # a spaced key mark
    (b'{"a":{"b":1,"b":1}}', ("a", "b"), "structure"),           # equal values, still twice
    (b'{"n": "x\\": 1", "n": 2}', ("n",), "structure"),          # a mark inside a string too
    (b'{"v": [1, -212.000000000000000001]}', ("v", 1), "value"),
    (b'{"v": -1e-400}', ("v",), "value"),
    (b'{"v": 1.2345E-320}', ("v",), "value"),                     # subnormal: digits lost
    (b'{"v": 123456789012345678901}', None, None),               # an int: kept exactly
    (b'{"v": 5e-324, "w": 1e300}', None, None),                  # exactly floats
    (b'{"v": "1234567890123456789012", "w": "complete-104"}', None, None),
])
def test_what_the_fast_test_sends_to_the_exact_reading(raw, path, code):
    from mafhir.strictjson import parse

    doc, findings = parse(raw)
    if path is None:
        assert findings == []
        assert doc == json.loads(raw)  # the standard library reads the same values
    else:
        assert [(f.path, f.code) for f in findings] == [(path, code)]
