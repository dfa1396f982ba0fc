"""``mafhir demo``: a day at the synthetic clinic, mapped, validated and written locally."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_demo"]


def run_demo(out_dir: Path) -> int:
    raise NotImplementedError
