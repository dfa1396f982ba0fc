"""The validation memos keep each remembered JSON text at its own size.

orjson (3.12+) returns its write buffer unshrunk: every result holds at least 4 KiB,
whatever its length. The memos of the structure check and of the compiled profile walk
remember thousands of such texts (about 80 bytes each), so holding orjson's results as
they come cost ~4 KiB an entry: `mafhir map --ndjson` peaked at 164 MB for 10,000 tasks and
198 MB for 100,000 (the limit is 150 MB), against 112 and 118 MB with the texts copied to
their size (benchmarks/bench_map.py, part 2). These tests measure what stays allocated
(tracemalloc: allocator blocks, which ``sys.getsizeof`` does not show).
"""

from __future__ import annotations

import json
import tracemalloc

import orjson

from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.demo import demo_day_dir
from mafhir.io import dumps, kept
from mafhir.pipeline import Pipeline
from mafhir.plugins import get_registry


def _held(make, n: int = 2000) -> int:
    """Bytes of memory still allocated after making ``n`` texts and keeping them."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        texts = [make(i) for i in range(n)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(texts) == n
    return held


def test_orjson_results_hold_a_buffer_and_kept_copies_do_not():
    def raw(i: int) -> bytes:
        return orjson.dumps({"system": "http://loinc.org", "code": f"{i}-4"})

    assert _held(raw) >= 2000 * 1024  # what makes the memos' copies necessary
    assert kept(raw(7)) == raw(7) == dumps({"system": "http://loinc.org", "code": "7-4"})
    assert _held(lambda i: kept(raw(i))) < 2000 * 200
    assert _held(lambda i: dumps({"system": "http://loinc.org", "code": f"{i}-4"})) \
        < 2000 * 200


def test_memos_hold_texts_at_their_own_size():
    """No line of the structure check or the walk holds blocks of orjson's buffer size."""
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    with open(demo_day_dir() / "day.ndjson", "rb") as stream:
        tasks = [json.loads(line) for line in stream]
    tracemalloc.start()
    try:
        mapped = list(Pipeline(get_registry(), ctx).run(enumerate(tasks)))
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert len(mapped) == len(tasks)
    lines = [s for s in snapshot.statistics("lineno")
             if s.traceback[0].filename.endswith(("fastpath.py", "fastwalk.py"))]
    assert lines, "the checks ran and remembered something"
    heavy = [s for s in lines if s.count >= 50 and s.size / s.count >= 2048]
    assert not heavy, "memo texts holding orjson's buffer: " + "; ".join(
        f"{s.traceback[0].filename.rsplit('/', 1)[-1]}:{s.traceback[0].lineno} "
        f"{s.count} blocks, {s.size // s.count} B each" for s in heavy)
