"""The round trip on real loopback sockets: immunization tasks → VXU^V04 → the stand-in IIS
(over the CDC SOAP service, and over MLLP) → QBP^Q11 Z44 → RSP^K11 Z42 → FHIR history,
evaluations and forecast, and ``mafhir iis query`` on top. The expected dates are worked
out here by hand from the stand-in's documented schedule (mafhir_iis.forecast), not taken
from its output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers_iis import CREDENTIALS_ENV, running_standin, write_config
from helpers_iis_in import clinic, corpus_dir, uscore_problems
from mafhir_iis.asking import ask_registry
from mafhir_iis.config import IisConfig, load_iis
from mafhir_iis.connector import IisConnector

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context
from mafhir.pipeline import Pipeline
from mafhir.plugins import get_registry

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
NURSE = {"npi": "1234567893", "family": "Rivera", "given": ["Ana"]}
BABY = {"mrn": "MRN-BABY-1", "family": "Nguyen", "given": ["Linh"], "birth_date": "2026-10-01",
        "gender": "female", "address": {"line": ["4 Birch Ln"], "city": "Madison",
                                        "state": "WI", "postal_code": "53703"}}
HEPB_AT_BIRTH = ("hepb-birth", "08", "2026-10-01T10:00:00-05:00")
PEDIARIX = ("pediarix-1", "110", "2026-12-01T09:15:00-06:00")


def _dose(task_id: str, cvx: str, when: str) -> dict:
    return {"task": "immunization", "id": task_id, "patient": BABY, "vaccine": {"cvx": cvx},
            "occurred": when, "manufacturer": "SKB", "lot_number": f"LOT-{task_id}",
            "dose_ml": 0.5, "site": "LT", "route": "IM", "administered_by": NURSE,
            "eligibility": "V02", "funding_source": "VXC51",
            "vis": [{"document": "253088698300026411230724", "presented": when[:10]}]}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    for name, value in CREDENTIALS_ENV.items():
        monkeypatch.setenv(name, value)


@contextmanager
def registry_with(tmp_path: Path, transport: str, *doses: tuple[str, str, str]
                  ) -> Iterator[tuple[Clinic, Path, IisConfig]]:
    """The stand-in (its clock at NOW) holding ``doses`` of BABY, reported by the clinic
    over SOAP through the iis connector; the mafhir.toml naming it (``transport``)."""
    c = clinic()
    with running_standin(clock=lambda: NOW) as standin:
        path = write_config(tmp_path / "mafhir.toml", standin, transport=transport)
        config = load_iis("state", path)
        if doses:
            pipe = Pipeline(get_registry(), MapContext(clinic=c))
            tasks = [_dose(*d) for d in doses]
            bundle = transaction([e for n, t in enumerate(tasks)
                                  for e in pipe.map_task(n, pipe.parse(n, t)).entries])
            connector = IisConnector("state", config=config,
                                     ctx=V2Context(map=MapContext(clinic=c), now=NOW))
            try:
                connector.send(bundle)
            finally:
                connector.close()
        yield c, path, config


@pytest.mark.parametrize("transport", ["soap", "mllp"])
def test_doses_sent_come_back_with_the_forecast_computed_by_hand(transport, tmp_path):
    with registry_with(tmp_path, transport, HEPB_AT_BIRTH, PEDIARIX) as (c, _, config):
        result = ask_registry(config, {
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": c.mrn_namespace,
                            "value": "MRN-BABY-1"}],
            "name": [{"family": "Nguyen", "given": ["Linh"]}], "birthDate": "2026-10-01",
            "gender": "female"}, "Z44", V2Context(map=MapContext(clinic=c), now=NOW))
    assert (result.outcome, result.profile) == ("found", "Z42")
    imms = result.of_type("Immunization")
    assert [(i["vaccineCode"]["coding"][0]["code"], i["occurrenceDateTime"][:10])
            for i in imms] == [("08", "2026-10-01"), ("110", "2026-12-01")]
    assert [i["lotNumber"] for i in imms] == ["LOT-hepb-birth", "LOT-pediarix-1"]
    for imm in imms:
        assert imm["primarySource"] is False
        assert uscore_problems(imm, corpus_dir()) == []
    # 110 (DTaP-HepB-IPV) counts for three groups: hep B dose 2, DTaP 1, polio 1 — all valid
    evals = sorted((e["targetDisease"]["coding"][0]["code"], e["doseNumberPositiveInt"],
                    e["doseStatus"]["coding"][0]["code"])
                   for e in result.of_type("ImmunizationEvaluation"))
    assert evals == [("107", 1, "valid"), ("45", 1, "valid"), ("45", 2, "valid"),
                     ("89", 1, "valid")]
    [rec] = result.of_type("ImmunizationRecommendation")
    by_group = {r["vaccineCode"][0]["coding"][0]["code"]: r for r in rec["recommendation"]}

    def dates(group: str) -> dict:
        return {c["code"]["coding"][0]["code"]: c["value"]
                for c in by_group[group].get("dateCriterion", [])}

    # hep B dose 3: min age 6 months (2027-04-01) beats last dose + 56 days (2027-01-26);
    # due at 6 months too; overdue a month later
    assert dates("45") == {"30980-7": "2027-04-01", "30981-5": "2027-04-01",
                           "59778-1": "2027-05-01"}
    # DTaP dose 2: earliest = later of 2 months (2026-12-01) and 12-01 + 28 days
    # (2026-12-29); due at 4 months (2027-02-01); overdue 2027-03-01; latest at 7 years
    assert dates("107") == {"30980-7": "2027-02-01", "30981-5": "2026-12-29",
                            "59777-3": "2033-10-01", "59778-1": "2027-03-01"}
    assert by_group["45"]["forecastStatus"]["coding"][0]["code"] == "due"
    # Hib has no dose yet: dose 1 due at 2 months (2026-12-01), overdue 2027-01-01: due
    assert dates("17")["30980-7"] == "2026-12-01"
    assert by_group["17"]["forecastStatus"]["coding"][0]["code"] == "due"


def test_a_patient_the_registry_does_not_know_is_not_found(tmp_path):
    with registry_with(tmp_path, "soap") as (c, _, config):
        result = ask_registry(config, {
            "resourceType": "Patient", "identifier": [{"system": c.mrn_namespace,
                                                       "value": "NOBODY"}],
            "name": [{"family": "Ghost", "given": ["Casper"]}], "birthDate": "2020-01-01"},
            "Z34", V2Context(map=MapContext(clinic=c), now=NOW))
    assert result.outcome == "not-found" and result.profile == "Z33"


def _cli(c: Clinic, config: Path, tmp_path: Path, *args: str):
    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    clinic_file = tmp_path / "clinic.json"
    clinic_file.write_text(c.model_dump_json())
    return CliRunner().invoke(build_cli(), ["iis", "query", "state", *args, "--config",
                                            str(config), "--clinic", str(clinic_file)])


def test_the_cli_prints_the_history_and_forecast_table_and_the_json(tmp_path):
    """``mafhir iis query state --patient MRN --forecast`` (the query over MLLP): the dose
    sent is in the table, and so is hep B dose 2, due one month after birth (2026-11-01, by
    hand: min age 1 month beats the last dose + 28 days = 2026-10-29), overdue 2026-12-01
    — so "overdue" on 2026-12-03. ``--json`` is the Bundle; an unknown patient exits 1
    saying NF."""
    who = ["--family", "Nguyen", "--given", "Linh", "--birth-date", "2026-10-01", "--sex", "F"]
    with registry_with(tmp_path, "mllp", HEPB_AT_BIRTH) as (c, path, _):
        table = _cli(c, path, tmp_path, "--patient", "MRN-BABY-1", "--forecast", *who)
        as_json = _cli(c, path, tmp_path, "--patient", "MRN-BABY-1", "--json", *who)
        unknown = _cli(c, path, tmp_path, "--patient", "NOBODY", *who[:-4], "--birth-date",
                       "2020-01-01")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert any(line.startswith("08 ") and "2026-10-01" in line for line in lines)
    hepb = next(line for line in lines if line.startswith("45 "))
    assert hepb.split() == ["45", "Hep", "B", "2026-11-01", "2026-11-01", "2026-12-01",
                            "overdue"]  # due, earliest, (no latest), overdue, status
    assert as_json.exit_code == 0, as_json.output
    bundle = json.loads(as_json.output)
    assert bundle["resourceType"] == "Bundle"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient",
                                                                         "Immunization"]
    assert unknown.exit_code == 1 and "(NF)" in unknown.output


def test_the_cli_reads_the_demographics_from_the_clinics_store(tmp_path, monkeypatch):
    """Only ``--patient MRN``: name and birth date come from the clinic's local store
    ($MAFHIR_PATIENTS), so the registry can match the child on them too."""
    from mafhir.connectors.local import LocalStore

    with registry_with(tmp_path, "soap", HEPB_AT_BIRTH) as (c, path, _):
        store = LocalStore(tmp_path / "patients.db")
        store.put({"resourceType": "Patient", "identifier": [{"system": c.mrn_namespace,
                                                              "value": "MRN-BABY-1"}],
                   "name": [{"family": "Nguyen", "given": ["Linh"]}],
                   "birthDate": "2026-10-01", "gender": "female"})
        store.close()
        monkeypatch.setenv("MAFHIR_PATIENTS", f"local:{tmp_path / 'patients.db'}")
        out = _cli(c, path, tmp_path, "--patient", "MRN-BABY-1")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[1].startswith("08 Hep B")


def test_a_registry_refusing_the_query_exits_2_with_its_own_text(tmp_path):
    """A registry that answers AR (here: queries not allowed for this facility, its
    ERR-8 text): ``mafhir iis query`` exits 2 and says what the registry said."""
    from mafhir_iis.standin.answer import ANSWERERS

    def refuse(msg, registry, now) -> bytes:
        return ("MSH|^~\\&|WIR|WIR|MAFHIR|MAPLE-0042|20261203150000+0000||RSP^K11^RSP_K11|"
                f"R-1|P|2.5.1|||NE|NE|||||Z33^CDCPHINVS\rMSA|AR|{msg.control_id}\r"
                "ERR||MSH^1^4|207^Application internal error^HL70357|E||||Queries are not "
                f"enabled for this facility\rQAK|{msg.first('QPD').get(2)}|AR\r").encode()

    c = clinic()
    with running_standin(clock=lambda: NOW, answerers={**ANSWERERS, "QBP": refuse}) as standin:
        path = write_config(tmp_path / "mafhir.toml", standin)
        out = _cli(c, path, tmp_path, "--patient", "MRN-1", "--family", "Nguyen", "--given",
                   "Linh", "--birth-date", "2026-10-01")
    assert out.exit_code == 2
    assert "MSH[1]-4: Queries are not enabled for this facility" in out.output
