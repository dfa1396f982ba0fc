"""The ADT plugin's fixtures: the public corpus (as the core tests' ``corpus`` fixture)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mafhir.testing.plugin import skip_or_fail

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus (or $MAFHIR_CORPUS); skips when absent (fails under CI=true)."""
    if not (CORPUS / "MANIFEST.md").exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")
    return CORPUS
