"""Which module may import which (issue 12.8): the hook specifications know nothing of the
outbox, and the clinic's settings are read below the CLI layer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mafhir"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, TYPE_CHECKING blocks and function bodies included,
    as absolute dotted names (relative imports resolved against the file's package)."""
    package = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts[:-1]) \
        if path.is_relative_to(ROOT / "src") else ""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def test_hookspecs_do_not_import_the_outbox():
    imported = imported_modules(SRC / "hookspecs.py")
    assert not {m for m in imported if m.startswith("mafhir.outbox")}
    assert "mafhir.registry.Delivery" in imported


def test_clinic_settings_are_read_below_the_cli_layer():
    users = [SRC / "demo.py", SRC / "connectors" / "mllp.py", SRC / "hl7v2" / "cli.py",
             *(ROOT / "plugins" / "mafhir-pharmacy" / "src" / "mafhir_pharmacy").glob("*.py")]
    for path in users:
        imported = imported_modules(path)
        assert not {m for m in imported if m.endswith("load_clinic")} - {
            "mafhir.clinic.load_clinic"}, path.name
    assert not {m for m in imported_modules(SRC / "demo.py")
                if m == "mafhir.cli" or m.startswith("mafhir.cli.")}


def test_readme_names_every_hook():
    hooks = [n.name for n in ast.parse((SRC / "hookspecs.py").read_text()).body
             if isinstance(n, ast.FunctionDef)
             and any(getattr(d, "id", None) == "hookspec" for d in n.decorator_list)]
    section = (ROOT / "README.md").read_text().split("## Plugins", 1)[1].split("\n## ", 1)[0]
    assert len(hooks) == 9  # + register_dashboard_panels, worklist_items
    assert [h for h in hooks if f"`{h}`" not in section] == []
