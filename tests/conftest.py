"""Shared fixtures: the registry, the public corpus (skipped when absent), checking helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.plugins import get_registry, reset
from mafhir.testing.plugin import skip_or_fail
from mafhir.validation import check_bundle

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus"))

CLINIC = Clinic(
    name="Maple Street Family Clinic",
    system="https://maple-clinic.example.org/fhir/id",
    npi="1234567893",
)
CTX = MapContext(clinic=CLINIC)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: pytest-xdist hands out the first tests round robin, so each long
    run (the two SIGKILL proofs) starts at once on its own worker instead of ending the
    suite alone. Stable: the rest keep their order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def registry():
    reset()
    return get_registry()


@pytest.fixture(scope="session")
def ctx() -> MapContext:
    return CTX


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request, tmp_path):
    """``store_at(name)``: a store's location, once as a SQLite file and once as a fresh
    PostgreSQL database (tests/store_helpers.py)."""
    from store_helpers import store_at_fixture

    yield from store_at_fixture(request, tmp_path)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The public corpus at ../shared/corpus (or $MAFHIR_CORPUS); skip when it is absent."""
    if not (CORPUS / "MANIFEST.md").exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")
    return CORPUS


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def assert_valid_bundle(entries, registry) -> dict[str, Any]:
    """The entries as a transaction Bundle that passes structure and profile checks."""
    bundle = transaction(entries)
    issues = [i for i in check_bundle(bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    assert not issues, "\n".join(map(str, issues))
    return bundle
