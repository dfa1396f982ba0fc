"""``mafhir demo``: a day at the synthetic clinic, mapped, validated and written locally.

The day (``fixtures/clinic-day/``, shipped in the wheel as ``mafhir/demo_day``) is read
in order through the same pipeline as ``mafhir map``; each task's transaction Bundle is
validated again as a whole and delivered through the built-in ``dir`` connector. A task
that cannot be mapped is quarantined with its reasons, never dropped.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .bundle import transaction
from .clinic import load_clinic
from .connectors.dir import DirectoryConnector
from .context import MapContext
from .errors import InputError, Problem
from .io import dumps, iter_documents
from .pipeline import Failed, Pipeline
from .plugins import get_registry
from .validation import check_bundle, has_errors

__all__ = ["MANIFEST", "demo_day_dir", "foreign_files", "run_demo"]

DAY_FILE = "day.ndjson"
#: What the demo wrote into its folder (paths relative to it): a later run may replace
#: those, and refuses a folder holding anything else unless forced.
MANIFEST = ".mafhir-demo.json"
#: What a demo run writes, by name: per-type NDJSON, the quarantine and summary, the
#: Bundles, the outbox and local store (with SQLite's companions), the dir connector's lock.
_OUTPUTS = ("*.ndjson", "summary.json", "bundles/*.json", "mafhir.db*", "store.db*",
            ".mafhir-dir.lock")
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def demo_day_dir() -> Path:
    """Where the demo day lives: in the installed package, else in the source tree."""
    packaged = Path(str(importlib.resources.files("mafhir"))) / "demo_day"
    if (packaged / DAY_FILE).exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "fixtures" / "clinic-day"


def foreign_files(out_dir: Path, limit: int = 100) -> list[str]:
    """Files in ``out_dir`` (relative paths) that no demo run wrote there; at most
    ``limit`` of them (a folder like ``/`` is not walked to its end)."""
    if not out_dir.exists():
        return []
    if not out_dir.is_dir():
        raise InputError([Problem(f"--out {out_dir}", "is not a folder", "conflict")])
    written: set[str] = set()
    try:
        listed = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        written = {w for w in listed if isinstance(w, str)} if isinstance(listed, list) else set()
    except (OSError, ValueError):  # none, or not the demo's: trust nothing in the folder
        written = set()
    written |= {w + c for w in written for c in _SQLITE_COMPANIONS}
    foreign: list[str] = []
    for folder, dirs, files in os.walk(out_dir):  # symlinks are not followed
        dirs.sort()
        for name in sorted(files):
            rel = (Path(folder) / name).relative_to(out_dir).as_posix()
            if rel != MANIFEST and rel not in written:
                foreign.append(rel)
                if len(foreign) >= limit:
                    return foreign
    return foreign


def _record_outputs(out_dir: Path) -> None:
    """Write the manifest: every file of the folder that a demo run writes."""
    mine = sorted({p.relative_to(out_dir).as_posix() for pattern in _OUTPUTS
                   for p in out_dir.glob(pattern) if p.is_file()})
    (out_dir / MANIFEST).write_text(json.dumps(mine, indent=1), encoding="utf-8")


def run_demo(out_dir: Path, day_dir: Path | None = None, console: Console | None = None,
             to: str | None = None, db: str | None = None, force: bool = False) -> int:
    """Map, validate and write the demo day; return the exit status (0 when all is well).

    The day's Bundles then go through the outbox: to the local store (``store.db`` in
    ``out_dir``), or to the FHIR server ``to``; ``db`` is the outbox (default
    ``out_dir/mafhir.db``). A folder holding files an earlier demo run did not write is
    refused (:class:`InputError` naming them) unless ``force``: the demo replaces its own
    files, and must not delete or overwrite anyone else's without being told to.
    """
    foreign = foreign_files(out_dir)
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
        raise InputError([Problem(f"--out {out_dir}", f"holds files the demo did not write "
                                  f"({shown}); choose an empty or new folder, or --force to "
                                  "let the demo replace its files there", "conflict")])
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        code = _run(out_dir, day_dir, console, to, db)
    except BaseException:
        with contextlib.suppress(OSError):  # what did get written stays the demo's
            _record_outputs(out_dir)
        raise
    _record_outputs(out_dir)
    return code


def _run(out_dir: Path, day_dir: Path | None, console: Console | None, to: str | None,
         db: str | None) -> int:
    console = console or Console()
    day = day_dir or demo_day_dir()
    registry = get_registry()
    clinic = load_clinic(str(day / "clinic.json"))
    pipeline = Pipeline(registry, MapContext(clinic=clinic))
    quarantine_path = out_dir / "quarantine.ndjson"
    quarantine_path.unlink(missing_ok=True)
    for old in (out_dir / "bundles").glob("*.json"):
        old.unlink()
    for old in out_dir.glob("*.ndjson"):
        old.unlink()
    connector = registry.connectors["dir"].factory(str(out_dir))  # after the clean-up: it
    # starts from what the folder's NDJSON holds
    if not isinstance(connector, DirectoryConnector):  # send(name=) and stored() are its own
        raise TypeError(f"the demo needs the built-in dir connector, not "
                        f"{type(connector).__name__}")

    tasks: Counter[str] = Counter()
    resources: dict[str, Counter[str]] = defaultdict(Counter)
    warnings: list[str] = []
    quarantined: list[Failed] = []
    bundle_errors = 0
    stored: dict[str, int] = {}
    day_bundles: list[tuple[str, dict]] = []
    try:
        with open(day / DAY_FILE, "rb") as stream:
            for result in pipeline.run(iter_documents(stream, label=DAY_FILE)):
                if isinstance(result, Failed):
                    quarantined.append(result)
                    continue
                kind = result.task.task
                bundle = transaction(result.entries)
                if has_errors(check_bundle(bundle, registry.profiles, errors_only=True)):
                    bundle_errors += 1
                    continue
                connector.send(bundle, name=f"{result.index:03d}-{kind}-{result.task.id}")
                day_bundles.append((f"demo#{result.index} {kind} {result.task.id}", bundle))
                tasks[kind] += 1
                for entry in bundle["entry"]:
                    resources[kind][entry["resource"]["resourceType"]] += 1
                warnings.extend(str(w) for w in result.warnings)
    finally:
        stored = connector.stored()
        connector.close()
    if quarantined:
        with open(quarantine_path, "wb") as out:
            for failed in quarantined:
                out.write(dumps({"index": failed.index, "task": failed.raw,
                                 "problems": [str(p) for p in failed.problems]}) + b"\n")

    table = Table(title=f"mafhir demo — {clinic.name}: the MA's day")
    for col in ("task kind", "tasks", "resources in their Bundles"):
        table.add_column(col)
    for kind in sorted(tasks):
        made = ", ".join(f"{n} {t}" for t, n in sorted(resources[kind].items()))
        table.add_row(kind, str(tasks[kind]), made)
    console.print(table)
    kept = Table(title="stored once each (the latest state), as NDJSON")
    kept.add_column("resource type")
    kept.add_column("count", justify="right")
    for rtype in sorted(stored):
        kept.add_row(f"{rtype}.ndjson", str(stored[rtype]))
    console.print(kept)
    for w in warnings:
        console.print(f"[yellow]warning[/yellow] {escape(w)}")
    for failed in quarantined:
        for p in failed.problems:
            console.print(f"[red]quarantined[/red] {escape(str(p))}")
    console.print(f"\n{sum(tasks.values())} tasks mapped and validated → "
                  f"{sum(tasks.values())} transaction Bundles in {out_dir / 'bundles'}")
    if quarantined:
        console.print(f"{len(quarantined)} task(s) quarantined with their reasons in "
                      f"{quarantine_path} (nothing dropped)")
    from .outbox.demo import sync_day

    synced = sync_day(day_bundles, out_dir, console, to=to, db=db)
    (out_dir / "summary.json").write_text(json.dumps({
        "tasks": dict(tasks),
        "resources": {k: dict(v) for k, v in resources.items()},
        "stored": stored,
        "warnings": warnings,
        "quarantined": [{"index": f.index, "problems": [str(p) for p in f.problems]}
                        for f in quarantined],
        "sync": synced,
    }, indent=2))
    return 1 if bundle_errors or synced["dead"] else 0
