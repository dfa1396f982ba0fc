"""``mafhir convert --from hl7v2`` over many messages in one process (issue 14): files of
many, folders, stdin as a stream, batches; a bad message reported in its place while the
others are written; exit 0 / 2.

Every run here is the real command in a child process. What each message should become is
worked out apart from the command: the corpus messages one by one through the library
(``parse`` → ``convert`` → ``check_bundle``, the path the lab and ADT corpus tests hold to
hand-checked values), MSH-9/MSH-10 read with python-hl7, and the project's own messages
written here with their faults known.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import hl7
import pytest

from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.io import dumps, loads
from mafhir.validation import check_bundle

MAFHIR = Path(sys.executable).parent / "mafhir"
ROOT = Path(__file__).resolve().parents[1]
CLINIC_FILE = ROOT / "fixtures" / "clinic-day" / "clinic.json"
CLINIC = load_clinic(str(CLINIC_FILE))
ENV = {**os.environ, "MAFHIR_TZ": "UTC"}
OURS = ["--clinic", str(CLINIC_FILE), "--namespace", f"CLINIC={CLINIC.mrn_namespace}"]
#: what OURS and MAFHIR_TZ=UTC configure, for the library
OUR_CTX = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("UTC"),
                    namespaces={"CLINIC": CLINIC.mrn_namespace})


def oru(control: str, value: str = "95", family: str = "Quixote") -> bytes:
    """One glucose result for the clinic's patient (CR-separated)."""
    return (f"MSH|^~\\&|LAB|QUEST|EHR|CLINIC|20261127083000-0500||ORU^R01^ORU_R01|{control}|"
            f"P|2.5.1\rPID|1||MRN-7731^^^CLINIC^MR||{family}^Ana||19800101|F\r"
            "OBR|1|ord-1|L-1|2345-7^Glucose^LN|||20261127080000-0500\r"
            f"OBX|1|NM|2345-7^Glucose^LN||{value}|mg/dL|70-99|N|||F\r").encode()


def run(args: list[str], cwd: Path, stdin: bytes | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(MAFHIR), "convert", "--from", "hl7v2", *args], input=stdin,
                          capture_output=True, cwd=cwd, env=ENV, timeout=300)


def results(stderr: bytes) -> list[str]:
    return [x for x in stderr.decode().splitlines() if x.startswith("#")]


def bundles(stdout: bytes) -> list[dict]:
    return [loads(x) for x in stdout.splitlines()]


def expected_alone(registry, data: bytes, ctx: V2Context) -> dict | None:
    """The Bundle of one message converted and checked alone through the library, or
    None when it is refused."""
    try:
        bundle = convert(registry, parse(data), ctx).bundle
    except InputError:
        return None
    errors = [i for i in check_bundle(bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    return None if errors else loads(dumps(bundle))


# --- the corpus: ORU, ADT and SIU messages put together ---------------------------------

def corpus_files(corpus: Path) -> list[Path]:
    return sorted([*(corpus / "hl7v2" / "oru").glob("*/*.hl7"),
                   *(corpus / "hl7v2" / "adt").glob("*/*.hl7"),
                   *(corpus / "hl7v2" / "siu").glob("*/*.hl7")])


def theirs(data: bytes) -> hl7.Message:
    text = data.decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
    return hl7.parse("\r".join(line for line in text.split("\r") if line.strip()))


def authorities(msgs: list[hl7.Message]) -> list[str]:
    """Each message's first PID-3 assigning authority (what a clinic maps to its MRN
    system), as python-hl7 reads it."""
    found = []
    for msg in msgs:
        cx = str(msg.segment("PID")[3]).split("~")[0].split("^")
        hd = cx[3].split("&") if len(cx) > 3 else [""]
        name = hd[0] or (hd[1] if len(hd) > 1 else "")
        if name and name not in found:
            found.append(name)
    return found


@pytest.fixture(scope="module")
def corpus_run(corpus, tmp_path_factory, registry):
    files = corpus_files(corpus)
    raw = [p.read_bytes() for p in files]
    msgs = [theirs(r) for r in raw]
    names = authorities(msgs)
    ctx = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
                    namespaces={a: CLINIC.mrn_namespace for a in names})
    expected = [expected_alone(registry, r, ctx) for r in raw]
    args = ["--clinic", str(CLINIC_FILE), "--tz", "America/Chicago"]
    for name in names:
        args += ["--namespace", f"{name}={CLINIC.mrn_namespace}"]
    return files, raw, msgs, expected, args, tmp_path_factory.mktemp("corpus")


@pytest.mark.corpus
def test_corpus_messages_in_one_file_convert_as_each_does_alone(corpus_run):
    files, raw, msgs, expected, args, tmp = corpus_run
    together = tmp / "together.hl7"
    # as an archive keeps them: one after another, LF, CR or CRLF as each source had it
    together.write_bytes(b"".join(r.rstrip(b"\r\n") + b"\r\n" for r in raw))
    proc = run([*args, str(together)], tmp)
    lines = results(proc.stderr)
    assert len(lines) == len(files) == 45, proc.stderr.decode()[-2000:]
    assert bundles(proc.stdout) == [e for e in expected if e is not None]
    for n, (msg, want, line) in enumerate(zip(msgs, expected, lines, strict=True), start=1):
        msh9 = f"{msg.segment('MSH')[9][0][0]}^{msg.segment('MSH')[9][0][1]}"
        assert line.startswith(f"#{n} {together}#{n} {msh9} {msg.segment('MSH')[10]}: "), line
        verdict = line.split(": ")[1].split(",")[0]
        assert verdict in ("ok", "error", "review", "rejected"), line
        assert (verdict == "ok") == (want is not None), line
    converted = sum(e is not None for e in expected)
    assert 0 < converted < len(files)  # the corpus has both kinds: a real test of each
    assert proc.returncode == 2  # some were refused; the others are written all the same
    assert f"converted {converted} of 45 message(s)" in proc.stderr.decode()


@pytest.mark.corpus
def test_corpus_folders_are_read_file_by_file_in_name_order(corpus_run, corpus):
    files, _raw, _msgs, expected, args, tmp = corpus_run
    folders = [corpus / "hl7v2" / "oru" / "microsoft-fhir-converter",
               corpus / "hl7v2" / "siu" / "microsoft-fhir-converter"]
    proc = run([*args, *map(str, folders)], tmp)
    in_order = sorted(folders[0].glob("*.hl7")) + sorted(folders[1].glob("*.hl7"))
    want = [expected[files.index(p)] for p in in_order]
    assert [x.split(" ")[1] for x in results(proc.stderr)] == [f"{p}#1" for p in in_order]
    assert bundles(proc.stdout) == [w for w in want if w is not None]
    assert proc.returncode == (0 if all(w is not None for w in want) else 2)


@pytest.mark.corpus
def test_corpus_stdin_through_a_pipe(corpus_run):
    files, raw, _msgs, expected, args, tmp = corpus_run
    siu = [i for i, p in enumerate(files) if "/siu/" in str(p)]
    proc = run([*args, "-"], tmp, stdin=b"".join(raw[i].rstrip(b"\r\n") + b"\n" for i in siu))
    assert bundles(proc.stdout) == [expected[i] for i in siu if expected[i] is not None]
    assert [x.split(" ")[1] for x in results(proc.stderr)] == \
        [f"stdin#{n}" for n in range(1, len(siu) + 1)]


# --- the project's own messages, faults known ---------------------------------------------

def test_a_broken_message_in_the_middle_stops_nothing(tmp_path, registry):
    broken_value = oru("B-2", value="six point nine")
    broken_structure = (b"MSH|^~\\&|LAB|QUEST|EHR|CLINIC|20261127083000-0500||ORU^R01|C-3|P|"
                        b"2.5.1\rPID|1||MRN-7731^^^CLINIC^MR||Quixote^Ana\rnot a segment\r")
    src = tmp_path / "day.hl7"
    src.write_bytes(oru("A-1") + broken_value + broken_structure + oru("D-4"))
    proc = run([*OURS, str(src)], tmp_path)
    assert proc.returncode == 2
    ctx = OUR_CTX
    assert bundles(proc.stdout) == [expected_alone(registry, oru(c), ctx)
                                    for c in ("A-1", "D-4")]
    lines = results(proc.stderr)
    assert lines[0] == f"#1 {src}#1 ORU^R01 A-1: ok"
    assert lines[1].startswith(f"#2 {src}#2 ORU^R01 B-2: error: OBX[1]-5: ")
    assert lines[2].startswith(f"#3 {src}#3 ORU^R01 C-3: rejected: segment 3: ")
    assert lines[3] == f"#4 {src}#4 ORU^R01 D-4: ok"
    err = proc.stderr.decode()
    assert "converted 2 of 4 message(s); refused 2 (1 error, 1 rejected)" in err
    assert "six" not in err and "Quixote" not in err and "MRN-7731" not in err  # no PHI


@pytest.mark.parametrize("eol", [b"\r", b"\n", b"\r\n"], ids=["CR", "LF", "CRLF"])
def test_segment_separators_cr_lf_crlf(tmp_path, registry, eol):
    ctx = OUR_CTX
    controls = ("E-1", "E-2", "E-3")
    src = tmp_path / "eol.hl7"
    src.write_bytes(b"".join(oru(c).replace(b"\r", eol) for c in controls))
    proc = run([*OURS, str(src)], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert bundles(proc.stdout) == [expected_alone(registry, oru(c), ctx) for c in controls]
    assert [x.rsplit(" ", 2)[1:] for x in results(proc.stderr)] == \
        [[f"{c}:", "ok"] for c in controls]


def test_a_batch_with_file_and_batch_envelopes(tmp_path, registry):
    ctx = OUR_CTX
    batch = (b"FHS|^~\\&|LAB|QUEST|EHR|CLINIC|20261127090000-0500\r"
             b"BHS|^~\\&|LAB|QUEST|EHR|CLINIC|20261127090000-0500\r"
             + oru("F-1") + oru("F-2") + b"BTS|2\rFTS|1\r")
    src = tmp_path / "batch.hl7"
    src.write_bytes(batch)
    proc = run([*OURS, str(src)], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert bundles(proc.stdout) == [expected_alone(registry, oru(c), ctx)
                                    for c in ("F-1", "F-2")]
    # a trailer that counts another number: both messages written, the batch reported
    src.write_bytes(batch.replace(b"BTS|2", b"BTS|3"))
    proc = run([*OURS, str(src)], tmp_path)
    assert proc.returncode == 2
    assert len(bundles(proc.stdout)) == 2
    assert results(proc.stderr)[2] == (f"#3 {src} ? ?: rejected: {src} line 11 BTS-1: the "
                                       "batch says 3 message(s) but holds 2")


def test_one_message_in_a_batch_prints_as_one_message_always_has(tmp_path, registry):
    ctx = OUR_CTX
    src = tmp_path / "one.hl7"
    src.write_bytes(b"BHS|^~\\&|LAB\r" + oru("G-1") + b"BTS|1\r")
    proc = run([*OURS, str(src)], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b'{\n  "resourceType": "Bundle"')  # pretty, as before
    assert loads(proc.stdout) == expected_alone(registry, oru("G-1"), ctx)
    assert not results(proc.stderr)


def test_out_writes_one_file_per_message_named_by_order_and_control_id(tmp_path):
    src = tmp_path / "m.hl7"
    src.write_bytes(oru("H/1") + oru("H-2", value="x") + oru("H^3"))
    out = tmp_path / "bundles"
    proc = run([*OURS, "--out", str(out), str(src)], tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert sorted(p.name for p in out.iterdir()) == ["000001-H_1.json", "000003-H_3.json"]
    ndjson = run([*OURS, "--ndjson", str(src)], tmp_path)
    assert [loads((out / n).read_bytes()) for n in ("000001-H_1.json", "000003-H_3.json")] \
        == bundles(ndjson.stdout)


def test_stdin_is_converted_as_it_arrives(tmp_path, registry):
    """With --ndjson a message's Bundle is written as soon as its end is known (the next
    MSH), while the sender is still sending: the pipe is not read to its end first."""
    ctx = OUR_CTX
    proc = subprocess.Popen([str(MAFHIR), "convert", "--from", "hl7v2", "--ndjson", *OURS,
                             "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, env=ENV)
    assert proc.stdin is not None and proc.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        later = oru("S-2", value="96")
        msh_end = later.index(b"\r") + 1
        proc.stdin.write(oru("S-1") + later[:msh_end])  # the next MSH has come
        proc.stdin.flush()
        first = lines.get(timeout=120)  # a deadline, not a pause
        assert proc.poll() is None  # still reading: the input is not finished
        assert loads(first) == expected_alone(registry, oru("S-1"), ctx)
        proc.stdin.write(later[msh_end:])
        proc.stdin.close()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    second = lines.get(timeout=5)
    assert loads(second) == expected_alone(registry, later, ctx)
    assert lines.empty()


def test_an_input_without_a_message_among_others_is_named(tmp_path):
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"\r\n")
    good = tmp_path / "good.hl7"
    good.write_bytes(oru("K-1"))
    proc = run([*OURS, str(empty), str(good)], tmp_path)
    assert proc.returncode == 2
    assert results(proc.stderr) == [f"#1 {empty} ? ?: rejected: {empty}: holds no HL7 v2 "
                                    "message", f"#2 {good}#1 ORU^R01 K-1: ok"]
    assert len(bundles(proc.stdout)) == 1


def test_options_of_many_are_refused_where_they_do_nothing(tmp_path):
    proc = subprocess.run([str(MAFHIR), "convert", "--to", "hl7v2", "--message", "OML^O21",
                           "--ndjson", str(CLINIC_FILE)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "--ndjson: only with --from hl7v2" in proc.stderr
    proc = subprocess.run([str(MAFHIR), "convert", "--to", "hl7v2", "--message", "OML^O21",
                           str(CLINIC_FILE), str(CLINIC_FILE)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "takes one FILE" in proc.stderr


class _Trickle:
    """A stream that hands out its bytes a few at a time, as a pipe may."""

    def __init__(self, data: bytes, sizes: tuple[int, ...]) -> None:
        self.data, self.sizes, self.n = data, sizes, 0

    def read1(self, _size: int) -> bytes:
        size = self.sizes[self.n % len(self.sizes)]
        self.n += 1
        out, self.data = self.data[:size], self.data[size:]
        return out


def test_the_splitter_finds_the_same_messages_however_the_bytes_arrive():
    from mafhir.hl7v2.batch import iter_splits, split_messages

    a, b, c = oru("T-1"), oru("T-2"), oru("T-3")
    data = (b"\xef\xbb\xbfFHS|^~\\&|LAB\r\nBHS|^~\\&|LAB\r\n" + a.replace(b"\r", b"\r\n")
            + b"\x0b" + b.replace(b"\r", b"\n") + b"\x1c\r" + c + b"BTS|3\r\nFTS|1\r\n")
    whole = split_messages(data)
    assert [p.data for p in whole] == [a, b, c]
    # each message's own bytes, line ends kept (the CR after the frame end is b's: a
    # blank line before the next MSH)
    assert [p.original for p in whole] == [a.replace(b"\r", b"\r\n"),
                                           b.replace(b"\r", b"\n") + b"\r", c]
    for sizes in ((1,), (2, 3), (7,), (5, 1, 13)):
        assert list(iter_splits(_Trickle(data, sizes))) == whole, sizes


def test_a_one_message_file_is_its_own_bytes():
    from mafhir.hl7v2.batch import split_messages

    data = b"\xef\xbb\xbf" + oru("U-1").replace(b"\r", b"\r\n")
    (only,) = split_messages(data)
    assert only.original == data  # parsed as the file is: convert's output is unchanged


def test_a_missing_input_among_several_is_refused_before_anything_is_written(tmp_path):
    good = tmp_path / "good.hl7"
    good.write_bytes(oru("M-1"))
    proc = run([*OURS, str(good), str(tmp_path / "gone.hl7")], tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert "gone.hl7' does not exist" in proc.stderr.decode()
    assert not results(proc.stderr)
