"""Fixtures for the x12 eligibility plugin: the corpus, the stand-in, a partner, a clinic."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mafhir.testing.plugin import skip_or_fail
from mafhir_x12_eligibility.config import Partner
from mafhir_x12_eligibility.standin import Standin

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))  # uscore.py, outbox_helpers.py


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus (or $MAFHIR_CORPUS); skipped when absent, a failure under CI."""
    path = Path(os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (path / "MANIFEST.md").exists():
        skip_or_fail(f"public corpus not found at {path} (set MAFHIR_CORPUS)")
    return path


@pytest.fixture
def standin() -> Iterator[Standin]:
    with Standin() as server:
        yield server


@pytest.fixture
def partner(standin: Standin, tmp_path: Path) -> Partner:
    return Partner(url=standin.url, sender_id="CLINIC01", receiver_id="ACMECH",
                   provider_npi="1234567893", provider_name="Maple Street Family Clinic",
                   control_db=str(tmp_path / "control.db"), timeout=5.0, max_attempts=1)


@pytest.fixture
def registry_checked():
    """``check(bundle)``: mafhir's structure and profile checks find no error in it."""
    from mafhir.plugins import get_registry
    from mafhir.validation import check_bundle

    def check(bundle: dict) -> None:
        issues = [i for i in check_bundle(bundle, get_registry().profiles)
                  if i.severity in ("error", "fatal")]
        assert not issues, "\n".join(map(str, issues))

    return check
