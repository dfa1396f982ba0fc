"""``mafhir doctor`` and ``mafhir plugins`` say what the installation will do (issue 19,
items 4–5): the clinic and where it comes from, destinations (whether they answer; never a
secret), every plugin with what it adds, a misspelt plugin name."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

MAFHIR = Path(sys.executable).parent / "mafhir"
ROOT = Path(__file__).resolve().parents[1]
CLINIC = json.loads((ROOT / "fixtures" / "clinic-day" / "clinic.json").read_text())


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MAFHIR_CLINIC", "MAFHIR_CONFIG", "MAFHIR_DISABLE_PLUGINS",
                          "MAFHIR_LOAD_PLUGINS")}
    return subprocess.run([str(MAFHIR), *args], capture_output=True, text=True, cwd=cwd,
                          env={**clean, **env}, timeout=120)


def findings(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _toml(clinic: dict[str, Any], destinations: dict[str, dict[str, str]]) -> str:
    lines = ["[clinic]"] + [f"{k} = {json.dumps(v)}" for k, v in clinic.items()]
    for name, table in destinations.items():
        lines.append(f"[destinations.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_doctor_reports_clinic_destinations_and_plugins(tmp_path, fhir_base_url):
    down = f"http://127.0.0.1:{_closed_port()}/fhir"
    (tmp_path / "mafhir.toml").write_text(_toml(CLINIC, {
        "ehr": {"url": fhir_base_url},
        "old": {"url": down, "auth": "basic", "username": "ma",
                "password": "${OLD_EHR_PASSWORD}"}}))
    proc = run(["doctor", "--json"], tmp_path, OLD_EHR_PASSWORD="s3cret-Pa55")
    assert proc.returncode == 1, proc.stderr  # one destination is down
    found = findings(proc)
    by = {(f["section"], f["subject"]): f for f in found}
    clinic = by[("clinic", CLINIC["name"])]
    assert clinic["ok"] and clinic["data"]["system"] == CLINIC["system"]
    assert "[clinic] of mafhir.toml" in clinic["data"]["source"]
    assert by[("reachable", "ehr")]["ok"]
    assert "CapabilityStatement" in by[("reachable", "ehr")]["detail"]
    assert not by[("reachable", "old")]["ok"]
    assert "s3cret-Pa55" not in proc.stdout + proc.stderr
    vitals = by[("plugins", "mafhir.mappers.vitals")]
    assert vitals["data"]["adds"] == {"task kind": ["vitals"]}
    rest = by[("plugins", "fhir-rest")]
    assert {"send", "pull"} <= set(rest["data"]["adds"]["command"])
    assert "fhir-rest" in rest["data"]["adds"]["connector"]


def test_doctor_names_a_missing_clinic_and_a_misspelt_plugin(tmp_path):
    proc = run(["doctor", "--json", "--no-check"], tmp_path,
               MAFHIR_DISABLE_PLUGINS="pharmcy")
    assert proc.returncode == 1
    found = findings(proc)
    bad = [f["detail"] for f in found if not f["ok"]]
    assert any("none configured" in d and "urn:mafhir:clinic" in d for d in bad)
    assert "MAFHIR_DISABLE_PLUGINS: 'pharmcy' is no plugin (did you mean 'pharmacy'?)" in bad
    # the misspelling left the pharmacy plugin loaded: that is what the warning is for
    assert any(f["subject"] == "pharmacy" and f["ok"] for f in found)


def test_plugins_json_lists_what_each_plugin_adds(tmp_path):
    proc = run(["plugins", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    infos = {p["name"]: p for p in json.loads(proc.stdout)}
    pharmacy = infos["pharmacy"]["adds"]
    assert {"prescription", "refill_request", "refill_decision"} <= set(pharmacy["task kind"])
    assert "hl7v2:RDE^O11" in pharmacy["converter"]
    # the v2 layer's commands are registered by name by the built-in commands plugin
    assert {"convert", "listen", "hl7", "messages"} <= \
        set(infos["mafhir.cli.builtin"]["adds"]["command"])
    assert infos["mafhir.hl7v2.plugin"]["adds"] == {"connector": ["mllp"]}


def test_the_clinic_comes_from_mafhir_toml_and_its_absence_is_said_once(tmp_path):
    task = {"task": "vitals", "id": "v-1", "effective": "2026-11-27T09:00:00-05:00",
            "patient": {"mrn": "MS-1", "family": "Doe", "given": ["Jo"], "gender": "female",
                        "birth_date": "1990-01-01"},
            "heart_rate": {"value": 72}}
    (tmp_path / "t.json").write_text(json.dumps(task))
    bare = run(["map", "t.json"], tmp_path)
    assert bare.returncode == 0, bare.stderr
    assert bare.stderr.count("warning: no clinic is configured") == 1
    assert "urn:mafhir:clinic" in bare.stdout
    (tmp_path / "mafhir.toml").write_text(_toml(CLINIC, {}))
    configured = run(["map", "t.json"], tmp_path)
    assert configured.returncode == 0, configured.stderr
    assert "no clinic" not in configured.stderr
    assert CLINIC["system"] in configured.stdout and "urn:mafhir:clinic" not in \
        configured.stdout
