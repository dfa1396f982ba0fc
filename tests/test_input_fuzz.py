"""A seeded, bounded fuzz run over task input through ``mafhir map``'s reading path.

Valid tasks of the demo day are mutated as text (a key given twice, a number with more
digits than a float holds, invisible characters in identifiers and names, a BOM, deep
nesting, odd values, broken bytes) and each result goes through ``iter_documents`` and the
``Pipeline`` (what ``mafhir map`` runs) and through the ``map`` command itself. Whatever
comes in: no traceback, every task that is accepted is mapped to resources, every one that
is refused names a field; what the standard library's own reading says must be refused
(duplicate keys, inexact numbers) is.
"""

from __future__ import annotations

import io
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mafhir.cli.main import build_cli
from mafhir.errors import InputError
from mafhir.io import iter_documents
from mafhir.pipeline import Failed, Mapped, Pipeline

ROOT = Path(__file__).resolve().parents[1]
DAY = [json.loads(line) for line in
       (ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text().splitlines()]
TEMPLATES = [t for t in DAY if t["task"] in ("vitals", "immunization", "coverage")
             or t.get("action") == "book"]
ODD_CHARS = ["\u202e", "\u200b", "\x00", "\x1b", "\ufeff", "\u2066", "\u00a0", "e\u0301",
             "\u200d", "\n", "é", "\U0001f600"]


def _paths(doc: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a scalar in ``doc``."""
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _paths(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _paths(v, (*path, i))]
    return [path]


def _set(doc: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


@st.composite
def task_texts(draw: st.DrawFn) -> bytes:
    task = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(task)))  # again: a mutation reshapes the task
        kind = draw(st.sampled_from(["odd-char", "value", "drop"]))
        if kind == "odd-char":
            old = task
            for part in path:
                old = old[part]
            text = str(old)
            at = draw(st.integers(0, len(text)))
            _set(task, path, text[:at] + draw(st.sampled_from(ODD_CHARS)) + text[at:])
        elif kind == "value":
            _set(task, path, draw(st.one_of(
                st.none(), st.booleans(), st.integers(-10**20, 10**20),
                st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                st.lists(st.integers(), max_size=2))))
        elif len(path) > 1:
            parent = task
            for part in path[:-2]:
                parent = parent[part]
            container = parent[path[-2]]
            if isinstance(container, dict):
                container.pop(path[-1], None)
    text = json.dumps(task, ensure_ascii=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):  # text-level mutations json.dumps cannot make
        how = draw(st.sampled_from(["duplicate", "precise", "deep", "bom", "byte"]))
        if how == "duplicate":
            keys = [m.start() for m in re.finditer(r'"[a-z_]+": (\d+|"[^"]*")', text)]
            if keys:
                at = draw(st.sampled_from(keys))
                pair = re.match(r'"[a-z_]+": (\d+|"[^"]*")', text[at:]).group(0)
                text = text[:at] + pair + ", " + text[at:]
        elif how == "precise":
            numbers = [m.span() for m in re.finditer(r"(?<=: )\d+(\.\d+)?(?=[,}])", text)]
            if numbers:
                start, end = draw(st.sampled_from(numbers))
                text = text[:start] + draw(st.sampled_from(
                    ["212.000000000000000001", "1e-400", "98.6000000000000001",
                     "123456789012345678901234567890", "70.0", "1E2"])) + text[end:]
        elif how == "deep":
            depth = draw(st.integers(1, 150))
            text = text[:-1] + ', "nested": ' + "[" * depth + "]" * depth + "}"
        elif how == "bom":
            text = "\ufeff" + text
        else:
            raw = text.encode()
            at = draw(st.integers(0, len(raw)))
            return raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at:]
    return text.encode()


def _must_refuse(raw: bytes) -> bool:
    """What the standard library's own reading says cannot be taken as written."""
    def pairs(items: list[tuple[str, Any]]) -> dict:
        if len({k for k, _ in items}) != len(items):
            raise KeyError("duplicate")
        return dict(items)

    try:
        doc = json.loads(raw.decode("utf-8-sig"), parse_float=Decimal, object_pairs_hook=pairs)
    except KeyError:
        return True
    except (ValueError, RecursionError):
        return False  # not JSON: refused anyway, checked apart

    def inexact(node: Any) -> bool:
        if isinstance(node, dict):
            return any(inexact(v) for v in node.values())
        if isinstance(node, list):
            return any(inexact(v) for v in node)
        return isinstance(node, Decimal) and Decimal(repr(float(node))) != node

    return inexact(doc)


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=task_texts())
def test_task_input_is_mapped_or_refused_naming_a_field(registry, ctx, raw):
    try:
        results = list(Pipeline(registry, ctx).run(iter_documents(io.BytesIO(raw), "in.json")))
    except InputError as exc:  # the whole input is unreadable: named as the file
        results = [Failed(0, exc.problems)]
    assert len(results) == 1
    (result,) = results
    event("mapped" if isinstance(result, Mapped) else
          "refused: " + ", ".join(sorted({p.code for p in result.problems})))
    if isinstance(result, Mapped):
        assert result.entries and not _must_refuse(raw)
    else:
        assert isinstance(result, Failed) and result.problems
        for problem in result.problems:
            assert problem.location.startswith(("task[0]", "in.json")), problem
            assert "internal error" not in problem.message, problem
    proc = CliRunner().invoke(build_cli(), ["map", "-"], input=raw)
    assert proc.exception is None or isinstance(proc.exception, SystemExit), proc.exception
    assert proc.exit_code == (0 if isinstance(result, Mapped) else 2), proc.stderr
    if proc.exit_code == 2:
        said = [x for x in proc.stderr.splitlines()[:-1]
                if not x.startswith("warning: no clinic")]  # said once per process
        assert all(line.startswith("error: ") for line in said)
