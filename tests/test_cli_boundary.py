"""The CLI's one error boundary (issue 19, items 1–3): every ordinary mistake is one
``error:`` line and the documented exit status (docs/errors.md), never a traceback; a bug
is named by type and place, its message (which may quote a patient) withheld."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mafhir.cli import main as cli_main

MAFHIR = Path(sys.executable).parent / "mafhir"
ROOT = Path(__file__).resolve().parents[1]
CLINIC = ROOT / "fixtures" / "clinic-day" / "clinic.json"

# command → how it is given a file (the file goes last)
FILE_COMMANDS = {
    "map": ["map"],
    "validate": ["validate"],
    "sync": ["sync", "--db", "{tmp}/o.db"],
    "convert-in": ["convert", "--from", "hl7v2"],
    "convert-out": ["convert", "--to", "hl7v2", "--message", "OML^O21"],
    "send": ["send", "--to", "http://127.0.0.1:9"],
}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAFHIR), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "Error:" not in proc.stderr  # one spelling
    return errors[0]


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
@pytest.mark.parametrize("case", ["missing", "directory"])
def test_a_path_that_cannot_be_read_is_one_error_line_and_exit_2(tmp_path, command, case):
    target = tmp_path / "nope.ndjson" if case == "missing" else tmp_path / "a-folder"
    if case == "directory":
        target.mkdir()
    args = [a.format(tmp=tmp_path) for a in FILE_COMMANDS[command]] + [str(target)]
    proc = run(args, tmp_path)
    line = one_error_line(proc)
    assert proc.returncode == 2, proc.stderr
    assert target.name in line
    assert ("does not exist" in line or "No such file" in line) if case == "missing" \
        else ("directory" in line.lower())
    assert not (tmp_path / "o.db").exists()  # nothing made for an input that is not there


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
@pytest.mark.parametrize("blank", [b"", b"\n  \n"])
def test_an_empty_input_is_refused_not_an_empty_success(tmp_path, command, blank):
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(blank)
    args = [a.format(tmp=tmp_path) for a in FILE_COMMANDS[command]] + [str(empty)]
    proc = run(args, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "empty.ndjson" in one_error_line(proc)
    assert not (tmp_path / "o.db").exists()  # no outbox made for nothing


@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_a_broken_mafhir_toml_is_one_error_line_naming_it(tmp_path, command):
    """Bad configuration (docs/errors.md: exit 2), whichever command reads it."""
    (tmp_path / "mafhir.toml").write_text("[destinations.ehr\nurl = 'x'\n")
    src = tmp_path / "t.ndjson"
    src.write_text((ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text()
                   .splitlines()[0] + "\n")
    args = [a.format(tmp=tmp_path) for a in FILE_COMMANDS[command]] + [str(src)]
    proc = run(args, tmp_path)
    if command in ("validate", "convert-in", "convert-out"):
        # these read no destination and no [clinic] from mafhir.toml: the file's own errors
        assert "Traceback" not in proc.stderr and proc.returncode in (1, 2), proc.stderr
        return
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert one_error_line(proc).startswith("error: mafhir.toml: not valid TOML")


DAY_TASK = ROOT / "fixtures" / "clinic-day" / "day.ndjson"
ORDER = ROOT / "fixtures" / "lab" / "order.ndjson"
RESULT = ROOT / "fixtures" / "lab" / "oru.hl7"


def _nobody() -> str:
    """A loopback port nothing listens on (bound, then let go)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("command", ["send", "sync", "convert-mllp", "hl7-send"])
def test_an_unreachable_destination_is_one_line_and_exit_75(tmp_path, command):
    """Nothing listens there: try later (75), one line, no traceback, nothing lost."""
    src = tmp_path / "t.ndjson"
    src.write_text(DAY_TASK.read_text().splitlines()[0] + "\n")
    target = _nobody()
    args = {
        "send": ["send", "--to", f"http://{target}/fhir", "--clinic", str(CLINIC), str(src)],
        "sync": ["sync", "--to", f"http://{target}/fhir", "--db", str(tmp_path / "o.db"),
                 "--clinic", str(CLINIC), "--max-attempts", "1", str(src)],
        "convert-mllp": ["convert", "--to", "hl7v2", "--message", "OML^O21", "--clinic",
                         str(CLINIC), "--mllp", target, str(ORDER)],
        "hl7-send": ["hl7", "send", "--to", target, "--timeout", "5", str(RESULT)],
    }[command]
    proc = run(args, tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    if command == "sync":  # the outbox keeps it: dead after its one attempt, not dropped
        assert proc.returncode == 1, proc.stderr
        assert "dead letter" in proc.stderr
        return
    assert proc.returncode == 75, (proc.returncode, proc.stdout, proc.stderr)
    assert len([x for x in proc.stderr.splitlines() if x.startswith("error: ")]) <= 1


def test_usage_errors_keep_the_hint_and_use_our_spelling(tmp_path):
    proc = run(["map", "--bogus"], tmp_path)
    assert proc.returncode == 2
    assert "No such option '--bogus'" in one_error_line(proc)
    assert "Try 'mafhir map --help' for help." in proc.stderr


def _boundary(monkeypatch, exc: BaseException, argv: list[str]) -> tuple[int, str]:
    """Run main() with one extra command that raises ``exc``; return (status, stderr)."""
    real = cli_main.build_cli

    def build() -> click.Group:
        group = real()

        @group.command("explode")
        def explode() -> None:
            raise exc

        return group

    monkeypatch.setattr(cli_main, "build_cli", build)
    with pytest.raises(SystemExit) as ended:
        cli_main.main(argv)
    return int(ended.value.code or 0), ""


def test_a_bug_is_named_by_type_and_place_never_by_its_message(monkeypatch, capsys):
    status, _ = _boundary(monkeypatch, ValueError("Jane Q Doe 1970-01-01"), ["explode"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("error: internal error: ValueError at ")
    assert "test_cli_boundary.py" in err  # where it was raised
    assert "Jane" not in err and "Traceback" not in err


def test_debug_shows_the_frames_but_still_not_the_message(monkeypatch, capsys):
    monkeypatch.delenv("MAFHIR_DEBUG", raising=False)
    status, _ = _boundary(monkeypatch, KeyError("MRN-123456"), ["--debug", "explode"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback (most recent call last):" in err and "raise exc" in err
    assert "builtins.KeyError (message withheld" in err
    assert "MRN-123456" not in err


def test_an_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    status, _ = _boundary(monkeypatch, KeyboardInterrupt(), ["explode"])
    assert status == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"  # after click's newline


def test_an_os_error_that_may_pass_exits_75(monkeypatch, capsys):
    status, _ = _boundary(monkeypatch, ConnectionRefusedError(111, "Connection refused"),
                          ["explode"])
    assert status == 75
    assert capsys.readouterr().err == "error: Connection refused\n"


def _tasks(path: Path, good: int, bad: list[object]) -> Path:
    day = (ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text().splitlines()
    lines = day[:good] + [json.dumps(b) for b in bad]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_map_skip_invalid_writes_the_good_and_keeps_the_bad_with_reasons(tmp_path):
    bad = [{"task": "vitals", "id": "no-patient"}, {"task": "nosuch"}]
    src = _tasks(tmp_path / "t.ndjson", 4, bad)
    out = tmp_path / "out.ndjson"
    proc = run(["map", "--ndjson", "--skip-invalid", "-o", str(out), "--clinic", str(CLINIC),
                str(src)], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert len(out.read_text().splitlines()) == 4  # one Bundle per good task
    kept = [json.loads(x) for x in (tmp_path / "out.ndjson.quarantine.ndjson")
            .read_text().splitlines()]
    assert [k["task"] for k in kept] == bad  # the bad tasks exactly as given
    assert [k["index"] for k in kept] == [4, 5]
    assert any("patient" in p for p in kept[0]["problems"])
    assert "mapped 4 task(s); 2 set aside" in proc.stderr
    # each problem printed once, not as an error and again as a warning
    assert proc.stderr.count("task[4].patient") == 1


def test_map_without_skip_invalid_writes_nothing_and_exits_2(tmp_path):
    src = _tasks(tmp_path / "t.ndjson", 3, [{"task": "vitals", "id": "no-patient"}])
    out = tmp_path / "out.json"
    proc = run(["map", "-o", str(out), "--clinic", str(CLINIC), str(src)], tmp_path)
    assert proc.returncode == 2
    assert not out.exists()
    assert "1 of 4 task(s) failed; nothing written" in proc.stderr


@pytest.mark.parametrize(("args", "named"), [
    (["convert", "--from", "hl7v2", "--mllp", "127.0.0.1:9"], "--mllp"),
    (["convert", "--from", "hl7v2", "--receiving", "LAB^X"], "--receiving"),
    (["convert", "--to", "hl7v2", "--message", "OML^O21", "--strict"], "--strict"),
])
def test_an_option_that_would_do_nothing_is_an_error(tmp_path, args, named):
    src = tmp_path / "x.hl7"
    src.write_text("MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5.1\r")
    proc = run([*args, str(src)], tmp_path)
    assert proc.returncode == 2
    assert one_error_line(proc).startswith(f"error: {named}: only with")


def test_map_on_a_terminal_shows_a_live_count(tmp_path):
    """On a terminal, ``map`` shows how many tasks it has read (issue 19, item 7)."""
    import os
    import pty

    day = (ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text().splitlines()
    src = tmp_path / "t.ndjson"
    src.write_text("\n".join(day[:5]) + "\n")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(MAFHIR), "map", "-o", str(tmp_path / "o.json"), "--clinic",
                             str(CLINIC), str(src)], stdout=subprocess.PIPE, stderr=terminal,
                            cwd=tmp_path)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0
    os.close(controller)
    assert b"task(s) read" in seen and b"mapped 5 task(s)" in seen
