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


# --- figures, the before/after table, and every benchmark in `make bench` ----------------

#: Lines as the quick benchmarks printed them on this 2-core machine (bench_map --quick,
#: bench_startup --quick before the start-up work), copied from their output.
MAP_RSS = ('BENCH-RESULT {"bench": "map --ndjson", "side": "peak RSS, 20,000 tasks", '
           '"baseline": "", "kind": "figure", "value": [394.6484375, 394.6484375], '
           '"unit": "MB", "rounds": 1, "cores": 2, "note": "limit 150 MB"}')
VALIDATE_BEFORE = (
    'BENCH-RESULT {"bench": "startup", "side": "mafhir validate small.json", "baseline": '
    '"python -c pass", "kind": "cost", "cpu": [33.67847329769696, 37.878972885616804], '
    '"wall": [27.21829143741704, 28.92581212793608], "unit": "one start", "rounds": 3, '
    '"cores": 2, "note": ""}')


def test_a_figure_is_read_back_and_shown_with_its_unit():
    (result,) = rounds.parse_results([MAP_RSS])
    assert result["kind"] == "figure" and result["value"] == [394.6484375, 394.6484375]
    assert run_all.table([run_all.Outcome("map", [result])]).splitlines()[2] == (
        "| map --ndjson | peak RSS, 20,000 tasks; limit 150 MB | 394.6 MB | 2 |")


def test_a_figure_over_rounds_shows_median_then_min_and_a_share_keeps_its_percent(capsys):
    rounds.emit_figure("sync re-sync", "re-run of the demo day", (0.25, 0.5), "%",
                       note="target < 1%", rounds=3)
    rounds.emit_figure("sync memory", "peak RSS, 5,000 records to dir:", (101.0, 120.5), "MB")
    results = rounds.parse_results(capsys.readouterr().out.splitlines())
    assert [r["value"] for r in results] == [[0.25, 0.5], [101.0, 120.5]]
    assert results[0]["rounds"] == 3 and results[1]["rounds"] == 1
    rows = run_all.table([run_all.Outcome("x", results)]).splitlines()[2:]
    assert rows[0].split(" | ")[2] == "0.50% [0.25%]"
    assert rows[1].split(" | ")[2] == "120.5 MB [101.0 MB]"


@pytest.mark.parametrize(("line", "named"), [
    (MAP_RSS.replace('"value": [394.6484375, 394.6484375], ', ""), "'value'"),
    (MAP_RSS.replace('[394.6484375, 394.6484375]', '[true, 1]'), "'value' must be [min, median]"),
    (MAP_RSS.replace('"unit": "MB", ', ""), "'unit'"),
])
def test_a_malformed_figure_is_refused_naming_what_is_wrong(line, named):
    with pytest.raises(ValueError, match="line 1") as info:
        rounds.parse_results([line])
    assert named in str(info.value)


def test_reported_gives_back_what_report_computed_for_main_to_emit(capsys):
    # per unit: baseline 2 s and 4 s, the side 1 s each round: 2× and 4×, median 3×
    result = rounds.Rounds(units={"base": 10, "fast": 10},
                           cpu={"base": [20.0, 40.0], "fast": [10.0, 10.0]},
                           wall={"base": [10.0, 10.0], "fast": [10.0, 5.0]})
    returned = rounds.report(result, baseline="base", unit="things", title="part one, 10 things")
    capsys.readouterr()
    found = rounds.reported("part one")[-1]
    assert found is returned and found.title == "part one, 10 things"
    assert found["fast"]["cpu"] == (2.0, 3.0) and found["fast"]["wall"] == (1.0, 1.5)
    assert found.only("fast").title == "part one, 10 things"
    assert all(not r.title.startswith("part one") for r in rounds.reported("no such"))


def _outcomes(*lines: str, name: str = "b") -> list[run_all.Outcome]:
    return [run_all.Outcome(name, rounds.parse_results(list(lines)))]


def test_json_saved_is_read_back_as_the_same_results(tmp_path):
    saved = [*_outcomes(STARTUP, MAP_RSS), run_all.Outcome("sync", problem="failed (exit 1)")]
    run_all.save(saved, tmp_path / "before.json")
    loaded = run_all.load(tmp_path / "before.json")
    assert [(o.name, o.results, o.problem) for o in loaded] == \
        [(o.name, o.results, o.problem) for o in saved]


def test_a_file_that_is_no_saved_run_is_refused(tmp_path):
    (tmp_path / "x.json").write_text('{"results": []}')
    with pytest.raises(ValueError, match=r"not a run_all\.py --json file"):
        run_all.load(tmp_path / "x.json")


def test_before_and_after_stand_side_by_side_under_their_core_counts():
    after_validate = json.loads(VALIDATE_BEFORE.removeprefix("BENCH-RESULT "))
    after_validate.update(cpu=[20.5, 22.25], cores=4)
    new = {"bench": "startup", "side": "mafhir --version", "baseline": "python -c pass",
           "kind": "cost", "cpu": [5.0, 6.0], "wall": [5, 6], "cores": 4}
    before = _outcomes(VALIDATE_BEFORE, MAP_RSS)
    after = [run_all.Outcome("startup", rounds.parse_results(
                 ["BENCH-RESULT " + json.dumps(after_validate),
                  "BENCH-RESULT " + json.dumps(new)])),
             run_all.Outcome("map", problem="failed (exit 1)")]
    lines = run_all.before_after(before, after).splitlines()
    assert lines[0] == ("| benchmark | what is compared | before, CPU median [min] (2 cores) "
                        "| after, CPU median [min] (4 cores) |")
    assert lines[2] == ("| startup | mafhir validate small.json vs python -c pass "
                        "(cost: lower is better) | 37.88× [33.68×] | 22.25× [20.50×] |")
    assert lines[3] == ("| startup | mafhir --version vs python -c pass (cost: lower is better) "
                        "| — | 6.00× [5.00×] |")
    assert lines[4] == "| map | failed (exit 1) | — | — |"
    assert lines[5] == ("| map --ndjson | peak RSS, 20,000 tasks; limit 150 MB | 394.6 MB "
                        "| — |")
    assert len(lines) == 6


def test_every_benchmark_runs_in_make_bench():
    found = run_all.benchmarks()
    assert len(found) >= 13
    assert [p.name for p in found if not run_all.has_quick(p)] == []


def test_a_ratio_emitted_by_wall_shows_its_wall_ratio_marked_so(capsys):
    ratios = rounds.Ratios("direct client", True, "records", 3,
                           {"outbox, 1 thread": {"cpu": (0.5, 0.55), "wall": (0.9, 1.08)}})
    rounds.emit("sync", ratios, note="200 records", by="wall")
    (result,) = rounds.parse_results(capsys.readouterr().out.splitlines())
    assert result["by"] == "wall"
    assert run_all.measured(result) == "1.08× [0.90×] wall"
    with pytest.raises(ValueError, match="'by'"):
        rounds.parse_results([MAP.replace('"rounds"', '"by": "elapsed", "rounds"')])


def test_after_prints_a_saved_run_beside_before_and_runs_nothing(tmp_path, monkeypatch, capsys):
    def no_run(*args, **kwargs):
        raise AssertionError("--after runs no benchmark")

    monkeypatch.setattr(run_all, "run", no_run)
    run_all.save(_outcomes(VALIDATE_BEFORE, name="startup"), tmp_path / "before.json")
    after = json.loads(VALIDATE_BEFORE.removeprefix("BENCH-RESULT "))
    after.update(cpu=[27.09, 30.53])
    run_all.save([run_all.Outcome("startup", [after])], tmp_path / "after.json")
    code = run_all.main(["--after", str(tmp_path / "after.json"), "--before",
                         str(tmp_path / "before.json"), "--out", str(tmp_path / "t.md")])
    assert code == 0
    written = (tmp_path / "t.md").read_text().splitlines()
    assert written[2].endswith("| 37.88× [33.68×] | 30.53× [27.09×] |")
    assert "\n".join(written) in capsys.readouterr().out
