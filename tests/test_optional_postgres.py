"""psycopg is the ``[postgres]`` extra (issue 12.8): mafhir imports, ``mafhir demo`` runs and
the SQLite outbox works without it; a PostgreSQL outbox without it says how to get it.

Each check runs in a child process whose imports of psycopg fail, as in an install
without the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCK = """
import importlib.abc, sys
class NoPsycopg(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoPsycopg())
sys.modules.pop("psycopg", None)
from mafhir.cli.main import main
sys.argv = ["mafhir", *sys.argv[1:]]
main()
"""


def mafhir_without_psycopg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_the_block_works(tmp_path: Path):
    done = subprocess.run([sys.executable, "-c", BLOCK.replace("main()", "import psycopg")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "No module named 'psycopg'" in done.stderr


def test_demo_runs_without_psycopg(tmp_path: Path):
    done = mafhir_without_psycopg("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "demo").is_dir() and any((tmp_path / "demo").iterdir())
    assert "psycopg" not in done.stderr


def test_a_postgres_outbox_without_psycopg_names_the_extra(tmp_path: Path):
    day = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day"
    done = mafhir_without_psycopg("sync", str(day / "day.ndjson"), "--clinic",
                                  str(day / "clinic.json"), "--no-progress", "--db",
                                  "postgresql://postgres@127.0.0.1:5432/none", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--db" in done.stderr and "pip install 'mafhir[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr
