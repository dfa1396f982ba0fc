"""`mafhir validate` with the profile engine, and `mafhir ig add` / `ig list`."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.errors import InputError
from mafhir.profiles import Validator, install_package, installed_packages

US_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(build_cli(), list(args), env=env)


def write(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def test_required_binding_fails_the_run(tmp_path):
    bad = write(tmp_path, "p.json", {"resourceType": "Patient", "gender": "xyz"})
    result = run("validate", bad)
    assert result.exit_code == 1
    assert "Patient.gender" in result.output and "administrative-gender" in result.output


def test_json_gives_an_operation_outcome_with_expressions(tmp_path):
    bad = write(tmp_path, "o.json", {"resourceType": "Observation", "status": "done",
                                     "code": {"text": "x"}})
    result = run("validate", "--json", bad)
    assert result.exit_code == 1
    outcome = json.loads(result.output)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["expression"]) for i in outcome["issue"]
            if i["severity"] == "error"] == [("error", ["Observation.status"])]


def test_profile_option_checks_a_profile_not_claimed(tmp_path):
    """US Core Patient needs identifier, name and gender; base R4 needs none of them."""
    pat = write(tmp_path, "p.json", {"resourceType": "Patient", "birthDate": "1970-01-01"})
    assert run("validate", pat).exit_code == 0
    result = run("validate", "--profile", US_PATIENT, pat)
    assert result.exit_code == 1
    assert "Patient.identifier" in result.output


def test_ig_option_uses_that_releases_profile_for_the_type(tmp_path):
    pat = write(tmp_path, "p.json", {"resourceType": "Patient", "birthDate": "1970-01-01"})
    result = run("validate", "--ig", "us-core@6.1.0", pat)
    assert result.exit_code == 1
    assert "|6.1.0" in result.output
    unknown = run("validate", "--ig", "us-core@0.9", pat)
    assert unknown.exit_code == 2 and "not installed" in unknown.output


def test_warnings_alone_exit_zero(tmp_path):
    pat = write(tmp_path, "p.json", {"resourceType": "Patient",
                                     "meta": {"profile": ["http://example.org/none"]}})
    result = run("validate", pat)
    assert result.exit_code == 0
    assert "warning" in result.output and "mafhir ig add" in result.output


def test_must_support_on_request(tmp_path):
    doc = {"resourceType": "Patient", "meta": {"profile": [US_PATIENT]},
           "identifier": [{"system": "urn:x", "value": "1"}],
           "name": [{"family": "Doe"}], "gender": "unknown"}
    pat = write(tmp_path, "p.json", doc)
    assert "must-support" not in run("validate", pat).output
    result = run("validate", "--must-support", pat)
    assert result.exit_code == 0
    assert "Patient.birthDate" in result.output and "must-support" in result.output


def _package(tmp_path: Path) -> Path:
    """A one-profile package, written here: Patient with birthDate 1..1 (min raised from
    R4's 0) and gender fixed to 'unknown'."""
    sd = {"resourceType": "StructureDefinition", "url": "http://example.org/sd/strict-patient",
          "version": "0.1.0", "name": "StrictPatient", "kind": "resource", "type": "Patient",
          "derivation": "constraint", "abstract": False,
          "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
          "snapshot": {"element": [
              {"id": "Patient", "path": "Patient", "min": 0, "max": "*"},
              {"id": "Patient.meta", "path": "Patient.meta", "min": 0, "max": "1",
               "type": [{"code": "Meta"}]},
              {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1, "max": "1",
               "type": [{"code": "date"}]},
              {"id": "Patient.gender", "path": "Patient.gender", "min": 0, "max": "1",
               "type": [{"code": "code"}], "fixedCode": "unknown"}]}}
    out = tmp_path / "example.strict-0.1.0.tgz"
    with tarfile.open(out, "w:gz") as tar:
        for name, doc in [("package/package.json", {"name": "example.strict",
                                                    "version": "0.1.0"}),
                          ("package/StructureDefinition-strict-patient.json", sd)]:
            data = json.dumps(doc).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def test_ig_add_installs_and_compiles_a_package(tmp_path):
    cache = tmp_path / "cache"
    result = run("ig", "add", str(_package(tmp_path)), env={"MAFHIR_FHIR_PACKAGES": str(cache)})
    assert result.exit_code == 0, result.output
    assert (cache / "example.strict#0.1.0/package/package.json").exists()
    listed = run("ig", "list", env={"MAFHIR_FHIR_PACKAGES": str(cache)})
    assert "example.strict@0.1.0" in listed.output
    assert "hl7.fhir.us.core@7.0.0" in listed.output
    validator = Validator(installed_packages(cache))
    claim = {"meta": {"profile": ["http://example.org/sd/strict-patient"]}}
    found = validator.validate({"resourceType": "Patient", **claim, "gender": "male"})
    assert {(i.expression, i.rule) for i in found if i.severity == "error"} == {
        ("Patient.birthDate", "cardinality"), ("Patient.gender", "fixed")}
    assert [i for i in validator.validate({"resourceType": "Patient", **claim,
                                           "birthDate": "1970-01-01", "gender": "unknown"})
            if i.severity == "error"] == []


def test_ig_add_refuses_a_file_that_is_no_package(tmp_path):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tarball")
    result = run("ig", "add", str(junk), env={"MAFHIR_FHIR_PACKAGES": str(tmp_path / "c")})
    assert result.exit_code == 2 and "package.tgz" in result.output
    with pytest.raises(InputError, match=r"package\.tgz"):  # the same refusal, by the API
        install_package(junk, tmp_path / "c")
