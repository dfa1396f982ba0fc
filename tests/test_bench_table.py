"""``make bench``'s table (benchmarks/run_all.py) from the lines benchmarks print
(benchmarks/rounds.py ``emit``): the protocol is read back exactly, a benchmark without a
result gets a row saying why, and a malformed line is refused naming what is wrong. No
benchmark is run and nothing is timed: the lines are written here, by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import rounds  # noqa: E402  (benchmarks/ is no package: on sys.path just above)
import run_all  # noqa: E402

STARTUP = ('BENCH-RESULT {"bench": "startup", "side": "mafhir --help", "baseline": '
           '"python -c pass", "kind": "cost", "cpu": [9.5, 12.25], "wall": [8.6, 12.7], '
           '"unit": "one start", "rounds": 7, "cores": 2, "note": ""}')
MAP = ('BENCH-RESULT {"bench": "map", "side": "mafhir", "baseline": "plain model_validate", '
       '"kind": "speed", "cpu": [4.996, 5.5049], "wall": [4.1, 5.0], "rounds": 5, '
       '"cores": 2, "note": "2,000 tasks"}')


def test_result_lines_are_found_among_other_output_and_read_back():
    out = ["start-up — 7 interleaved rounds, 2 cores\n", "  python -c pass  CPU 29 ms\n",
           STARTUP + "\n", "some other line\n", MAP]
    results = rounds.parse_results(out)
    assert [r["bench"] for r in results] == ["startup", "map"]
    assert results[0]["cpu"] == [9.5, 12.25] and results[1]["kind"] == "speed"


def test_the_table_has_one_row_per_result_median_first_then_min():
    outcomes = [run_all.Outcome("startup", rounds.parse_results([STARTUP])),
                run_all.Outcome("map", rounds.parse_results([MAP]))]
    assert run_all.table(outcomes).splitlines() == [
        "| benchmark | what is compared | ratio, CPU median [min] | cores |",
        "|---|---|---|---|",
        "| startup | mafhir --help vs python -c pass (cost: lower is better) "
        "| 12.25× [9.50×] | 2 |",
        "| map | mafhir vs plain model_validate (speed: higher is better); 2,000 tasks "
        "| 5.50× [5.00×] | 2 |",
    ]


def test_a_benchmark_without_a_result_says_why_and_pipes_do_not_break_the_table():
    odd = {"bench": "hl7v2", "side": "ORU|R01 → FHIR", "baseline": "python-hl7", "kind": "speed",
           "cpu": [1, 2], "wall": [1, 2]}
    outcomes = [run_all.Outcome("sync", problem="not run: no --quick yet (--full runs it)"),
                run_all.Outcome("hl7v2", rounds.parse_results(
                    ["BENCH-RESULT " + json.dumps(odd)]))]
    rows = run_all.table(outcomes).splitlines()[2:]
    assert rows[0] == "| sync | not run: no --quick yet (--full runs it) | — | — |"
    assert rows[1] == ("| hl7v2 | ORU\\|R01 → FHIR vs python-hl7 (speed: higher is better) "
                       "| 2.00× [1.00×] | ? |")


def test_what_emit_prints_is_what_the_table_reads(capsys):
    ratios = rounds.Ratios("bare", True, "prescriptions", 3,
                           {"mafhir": {"cpu": (1.25, 1.5), "wall": (1.0, 1.125)}})
    rounds.emit("pharmacy FHIR", ratios, note="one transaction each")
    (line,) = capsys.readouterr().out.splitlines()
    (result,) = rounds.parse_results([line])
    assert result["bench"] == "pharmacy FHIR" and result["baseline"] == "bare"
    assert result["cpu"] == [1.25, 1.5] and result["wall"] == [1.0, 1.125]
    assert result["rounds"] == 3 and result["unit"] == "prescriptions"
    assert run_all.table([run_all.Outcome("pharmacy", [result])]).splitlines()[2] == (
        "| pharmacy FHIR | mafhir vs bare (speed: higher is better); one transaction each "
        f"| 1.50× [1.25×] | {result['cores']} |")


@pytest.mark.parametrize(("line", "named"), [
    ("BENCH-RESULT {not json", "not JSON"),
    ('BENCH-RESULT ["a list"]', "JSON object"),
    (STARTUP.replace('"cpu": [9.5, 12.25], ', ""), "'cpu'"),
    (STARTUP.replace("[9.5, 12.25]", "[9.5]"), "'cpu' must be [min, median]"),
    (STARTUP.replace('"cost"', '"faster"'), "'kind'"),
])
def test_a_malformed_result_line_is_refused_naming_what_is_wrong(line, named):
    with pytest.raises(ValueError, match="line 2") as info:
        rounds.parse_results(["noise", line])
    assert named in str(info.value)


def test_only_benchmarks_declaring_quick_are_run_quick(tmp_path):
    quick = tmp_path / "bench_a.py"
    quick.write_text('parser.add_argument("--quick", action="store_true")\n')
    slow = tmp_path / "bench_b.py"
    slow.write_text('parser.add_argument("--rounds", type=int)\n')
    assert run_all.has_quick(quick) and not run_all.has_quick(slow)
