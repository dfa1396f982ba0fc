"""``mafhir validate`` over many documents (issue 14): NDJSON read a line at a time from a
file or stdin, several files and folders, one result per document, counts, exit 0/1/2.

The documents are the US Core 7.0.0 examples of the public corpus (valid by their
publisher; the profile tests hold mafhir to 0 errors on them) and the same examples with
one fault put in by hand, whose error is known without asking mafhir.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MAFHIR = Path(sys.executable).parent / "mafhir"
GOOD = ("Patient-example.json", "Immunization-imm-1.json", "Observation-blood-pressure.json",
        "Encounter-example-1.json")


def run(args: list[str], cwd: Path, stdin: bytes | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(MAFHIR), "validate", *args], input=stdin, capture_output=True,
                          cwd=cwd, timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def verdicts(stdout: str) -> dict[str, str]:
    """label → "ok" or "error" (a document with any error line is "error")."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        label, _, rest = line.partition(": ")
        if rest == "ok":
            out.setdefault(label, "ok")
        elif rest.startswith("error"):
            out[label] = "error"
    return out


@pytest.fixture
def examples(corpus) -> dict[str, dict]:
    folder = corpus / "us-core" / "7.0.0" / "examples"
    return {name: json.loads((folder / name).read_text()) for name in GOOD}


def broken_patient(examples: dict[str, dict]) -> dict:
    patient = dict(examples["Patient-example.json"])
    patient["birthDate"] = "1970-13-45"  # no 13th month: not an R4 date
    return patient


@pytest.mark.corpus
def test_an_ndjson_stream_on_stdin_gets_a_result_per_line(tmp_path, examples):
    lines = [json.dumps(d) for d in examples.values()]
    lines.insert(2, json.dumps(broken_patient(examples)))
    lines.insert(4, "{not json")
    proc = run(["-"], tmp_path, ("\n".join(lines) + "\n").encode())
    assert proc.returncode == 1
    assert verdicts(proc.stdout) == {"stdin[0]": "ok", "stdin[1]": "ok", "stdin[2]": "error",
                                     "stdin[3]": "ok", "stdin[4]": "error", "stdin[5]": "ok"}
    assert any(line.startswith("stdin[2]: ") and "birthDate" in line
               for line in proc.stdout.splitlines())
    assert "validated 6 document(s): 4 ok, 2 with errors" in proc.stderr


@pytest.mark.corpus
def test_files_and_folders_each_document_named(tmp_path, examples):
    folder = tmp_path / "bundles"
    folder.mkdir()
    names = []
    for n, (name, doc) in enumerate(examples.items()):
        (folder / f"{n}-{name}").write_text(json.dumps(doc))
        names.append(str(folder / f"{n}-{name}"))
    (folder / ".hidden.json").write_text("{not json")  # hidden: not read
    ndjson = tmp_path / "two.ndjson"
    ndjson.write_text(json.dumps(examples[GOOD[0]]) + "\n" + json.dumps(examples[GOOD[1]]) + "\n")
    proc = run([str(ndjson), str(folder)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verdicts(proc.stdout) == {f"{ndjson}[0]": "ok", f"{ndjson}[1]": "ok",
                                     **{n: "ok" for n in names}}
    assert "validated 6 document(s): 6 ok, 0 with errors" in proc.stderr
    (folder / "9-broken.json").write_text(json.dumps(broken_patient(examples)))
    proc = run([str(folder)], tmp_path)
    assert proc.returncode == 1
    assert verdicts(proc.stdout)[str(folder / "9-broken.json")] == "error"
    assert "validated 5 document(s): 4 ok, 1 with errors" in proc.stderr


def test_one_document_prints_as_before_without_counts(tmp_path):
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps({"resourceType": "Patient", "id": "p1", "gender": "female"}))
    proc = run([str(doc)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith(f"{doc}: ok")
    assert "validated" not in proc.stderr


def test_no_document_at_all_is_exit_2_and_an_empty_file_among_others_is_named(tmp_path):
    empty = tmp_path / "empty.ndjson"
    empty.write_text("\n\n")
    proc = run([str(empty)], tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.strip() == f"{empty}: error: holds no FHIR document"
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"resourceType": "Patient", "id": "p1"}))
    proc = run([str(empty), str(good)], tmp_path)
    assert proc.returncode == 1
    assert verdicts(proc.stdout) == {str(empty): "error", str(good): "ok"}


def test_an_empty_folder_is_one_error_line(tmp_path):
    (tmp_path / "nothing").mkdir()
    proc = run([str(tmp_path / "nothing")], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nothing'}: the directory holds no file"
