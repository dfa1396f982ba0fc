"""No plugin imports another plugin: what two plugins share lives in the core (design.md,
"what several plugins share lives once"). The IN1 → Coverage reader that the ADT plugin
took from the lab plugin is the core's ``mafhir.hl7v2.insurance``, and both use it."""

from __future__ import annotations

from pathlib import Path

from test_layering import imported_modules

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

#: Imports across plugins that stay for now, by importer and module prefix: the lab plugin's
#: v2 message Reader (zones, times, PID), used by the ADT plugin's adt.py and siu.py, still
#: to move; the FHIR REST client the pharmacy and x12 plugins send and read with (design.md:
#: "the FHIR REST client serves every FHIR destination"). Listed so that no new one slips in.
PENDING = {"mafhir_hl7v2_adt": ("mafhir_hl7v2_lab.v2in",),
           "mafhir_pharmacy": ("mafhir_fhir_rest",),
           "mafhir_x12_eligibility": ("mafhir_fhir_rest",)}


def plugin_packages() -> dict[str, Path]:
    return {src.name: src for src in PLUGINS.glob("mafhir-*/src/mafhir_*") if src.is_dir()}


def test_no_plugin_imports_another_plugin():
    packages = plugin_packages()
    assert {"mafhir_hl7v2_adt", "mafhir_hl7v2_lab"} <= set(packages)
    crossing = set()
    for name, src in packages.items():
        allowed = PENDING.get(name, ())
        for path in src.rglob("*.py"):
            for module in imported_modules(path):
                other = module.split(".")[0]
                if other in packages and other != name and not any(
                        module == p or module.startswith(p + ".") for p in allowed):
                    crossing.add((path.relative_to(PLUGINS).as_posix(), module))
    assert crossing == set()


def test_both_plugins_read_in1_with_the_core_reader():
    adt = imported_modules(PLUGINS / "mafhir-hl7v2-adt/src/mafhir_hl7v2_adt/adt.py")
    lab = imported_modules(PLUGINS / "mafhir-hl7v2-lab/src/mafhir_hl7v2_lab/orders_in.py")
    assert "mafhir.hl7v2.insurance.coverage" in adt
    assert "mafhir.hl7v2.insurance.coverages" in lab
    assert not (PLUGINS / "mafhir-hl7v2-lab/src/mafhir_hl7v2_lab/insurance.py").exists()
