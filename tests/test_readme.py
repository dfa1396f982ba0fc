"""The README runs as written (issue 19, item 10): every command of its fenced ``sh``,
``console`` and ``bash`` blocks is run, section by section, in a fresh folder holding a copy
of ``fixtures/``, against a fresh SEKMET and loopback MLLP listeners; where the README
shows a transcript, the output is compared with it. A command that cannot run here is in
``SKIPPED`` with the reason — an allow-list, so a command added to the README fails this
test until it runs or is listed. The reference pages (``docs/*.md``) and the README's
command card are checked as synopses: every command and option they name exists.

How a command is run (the few liberties taken, each one a machine detail, not a change of
meaning):

* ports: ``8765`` (SEKMET) and ``2575``/``2576`` (MLLP) become free loopback ports, and
  ``0.0.0.0`` becomes ``127.0.0.1``, so that sessions sharing this machine never collide;
* ``../shared/fhir-test-server/start`` is the project's server script wherever it is
  (``find_server_dir``); ``$BASE`` is that server's URL (before the section sets it: a
  fresh SEKMET of this module's own, its pharmacy simulator on);
* ``$ cat FILE`` in a transcript declares a file: it is written as shown before the
  section runs (in every section, as a reader keeps it);
* a command ending in ``&`` runs in the background until the section ends (then Ctrl-C);
  a server command shown without ``&`` (``listen``) is started, seen to listen, and
  stopped with Ctrl-C — exit 0 or 130, no traceback;
* in transcripts ``…`` stands for any text, a line of only ``…`` for any lines; MSH-7 and
  MSH-10 (a time and a random control id) and 20-hex control ids are not compared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mafhir.testing.plugin import skip_or_fail
from mafhir.testing.server import FhirServer, find_server_dir, free_port, start_fhir_server

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
REFERENCE_PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "plugins" / "README.md"]
TUTORIAL = ROOT / "docs" / "plugins.md"
SHELLS = ("sh", "console", "bash")
DEADLINE = 120.0  # seconds a server command may take to start listening

#: Commands not run, with the reason. Keys are the command as the README writes it
#: (continuation lines joined with one space, without its comment).
SKIPPED: dict[str, str] = {
    "make demo": "installs the project into .venv; what it then runs, `mafhir demo`, is "
                 "run by the section 'Syncing: the outbox'",
    "make test": "the whole suite, this test included (test_make.py reads its dry run)",
    "make test FAST=1": "the whole suite, this test included (test_make.py reads its dry "
                        "run)",
    "export MAFHIR_OUTBOX=postgresql://postgres@127.0.0.1:5432/mafhir": "uses the "
        "machine's shared database `mafhir`; test_sync_concurrency.py runs workers on a "
        "fresh PostgreSQL database",
    "mafhir sync --to ehr --clinic fixtures/clinic-day/clinic.json "
    "fixtures/clinic-day/day.ndjson": "the PostgreSQL example (see the export above)",
    "mafhir worker & mafhir worker & mafhir worker &": "the PostgreSQL example (see the "
        "export above); test_sync_concurrency.py runs 4 worker processes",
    "mafhir pharmacy decide fhir-<id> --approve": "needs a refill request a pharmacy made "
        "(its server-assigned id); test_pharmacy_fhir.py decides one against SEKMET",
    "mafhir pharmacy decide REQ --deny too-soon --answer pharmacy-v2:HOST:PORT": "needs a "
        "request a pharmacy sent over v2; test_pharmacy_cli.py denies one and sends the "
        "RRE^O26 answer over MLLP",
}

#: The exit status the README gives for a command that does not exit 0.
EXIT: dict[str, int] = {
    "mafhir pull --from ehr coverage --patient MS-10024": 2,  # the transcript's error line
    # "exit 1: the day's one bad task is quarantined"
    "mafhir sync --clinic fixtures/clinic-day/clinic.json fixtures/clinic-day/day.ndjson": 1,
}

#: A command that only sets variables: ``NAME=value`` or ``export A=x B=y``.
ASSIGNMENTS = re.compile(r"(export )?[A-Za-z_]\w*=\S+( [A-Za-z_]\w*=\S+)*")

#: Commands that serve until stopped.
SERVERS = re.compile(r"^mafhir (listen|hl7 listen|serve|worker(?! --once)|iis standin|"
                     r"eligibility standin)\b")


@dataclass
class Command:
    """One command of a fenced block and the transcript shown under it (None: none)."""

    text: str
    line: int
    expected: list[str] | None = None


@dataclass
class Section:
    """The commands under one heading of a page, in order."""

    page: Path
    title: str
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.title}"


def fenced_blocks(path: Path) -> Iterator[tuple[str, str, int, str]]:
    """(heading, language, first line number, text) of every fenced block of a page."""
    heading, lang, start, body = "", None, 0, []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if lang is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if lang is None:
                lang, start, body = line[3:].strip(), n + 1, []
            else:
                yield heading, lang, start, "\n".join(body)
                lang = None
        elif lang is not None:
            body.append(line)


def _joined(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Lines with their ``\\`` continuations joined."""
    pending: list[str] = []
    first = 0
    for n, line in lines:
        if not pending:
            first = n
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1].strip())
            continue
        pending.append(line.strip())
        yield first, " ".join(p for p in pending if p)
        pending = []


def commands(lang: str, text: str, start: int) -> list[Command]:
    numbered = list(enumerate(text.splitlines(), start))
    if lang != "console":
        return [Command(t, n) for n, t in _joined(numbered)
                if t and not t.startswith("#")]
    found: list[Command] = []
    rows = iter(numbered)
    for n, line in rows:
        if line.startswith("$ "):
            parts = [(n, line[2:])]
            while parts[-1][1].rstrip().endswith("\\"):
                parts.append(next(rows))
            (_, joined), = list(_joined(parts))
            found.append(Command(joined, n, []))
        elif found and found[-1].expected is not None:
            found[-1].expected.append(line)
    return found


def sections(page: Path) -> list[Section]:
    found: dict[str, Section] = {}
    for heading, lang, start, text in fenced_blocks(page):
        if lang in SHELLS:
            section = found.setdefault(heading, Section(page, heading))
            section.commands += commands(lang, text, start)
    return [s for s in found.values() if s.commands]


#: The README's command card: a synopsis with placeholders (FILE, URL, HOST:PORT, 42).
CARD = "Commands"
README_SECTIONS = [s for s in sections(README) if s.title != CARD]
#: Sections that run for minutes (the demo day, three times): marked slow.
SLOW_SECTIONS = ("Syncing: the outbox",)


def _comment_free(text: str) -> str:
    """The command without a trailing comment (a ``#`` after whitespace, outside quotes)."""
    out, quote = [], ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out).strip()


# ---------------------------------------------------------------------------- the runner


@dataclass
class Shell:
    """A reader's terminal in a fresh folder: environment, ports, background jobs."""

    cwd: Path
    env: dict[str, str]
    ports: dict[str, int]
    jobs: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)
    servers: list[FhirServer] = field(default_factory=list)

    def local(self, text: str) -> str:
        """The text with this machine's ports and paths (see the module docstring)."""
        text = text.replace("0.0.0.0:", "127.0.0.1:")
        for port, here in self.ports.items():
            text = re.sub(rf"(?<=:){port}\b", str(here), text)
        server_dir = find_server_dir()
        if server_dir is not None:
            text = text.replace("../shared/fhir-test-server", str(server_dir))
        return text

    def run(self, command: Command) -> None:
        text = self.local(_comment_free(command.text))
        where = f"README.md:{command.line}: {command.text}"
        shown = re.fullmatch(r"cat (\S+)", text)
        if shown and command.expected is not None:  # the README declares this file
            lines = [self.local(line) for line in command.expected]
            (self.cwd / shown.group(1)).write_text("\n".join(lines) + "\n")
        if ASSIGNMENTS.fullmatch(text):
            self.assign(re.findall(r"([A-Za-z_]\w*)=", text), text, where)
        elif text.endswith("&"):
            self.background(text[:-1].strip(), where)
        elif SERVERS.match(text):
            self.serve_once(text, where)
        else:
            self.foreground(command, text, where)

    def assign(self, names: list[str], text: str, where: str) -> None:
        if "fhir-test-server" in text and "/start" in text:  # a server of the README's own
            port = free_port()
            run_dir = self.cwd.parent / f"sekmet-{port}"
            run_dir.mkdir()
            self.env.update(FHIR_PORT=str(port), FHIR_RUN_DIR=str(run_dir))
            self.ports["8765"] = port
        values = " ".join(f'"${name}"' for name in names)
        done = subprocess.run(["bash", "-c", f"{text}\nprintf '%s\\0' {values}"], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{where}\n{done.stderr}"
        self.env.update(zip(names, done.stdout.split("\0"), strict=False))
        if "FHIR_PORT" in self.env and "fhir-test-server" in text:
            server_dir = find_server_dir()
            self.servers.append(FhirServer(self.env["BASE"], int(self.env.pop("FHIR_PORT")),
                                           server_dir, Path(self.env.pop("FHIR_RUN_DIR"))))

    def foreground(self, command: Command, text: str, where: str) -> None:
        done = subprocess.run(["bash", "-c", text], cwd=self.cwd, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600)
        status = next((s for k, s in EXIT.items() if command.text.startswith(k)), 0)
        assert done.returncode == status, f"{where}\nexit {done.returncode}\n{done.stdout}"
        assert "Traceback" not in done.stdout, f"{where}\n{done.stdout}"
        if command.expected:
            expected = [self.local(line) for line in command.expected]
            assert_transcript(expected, done.stdout, where)

    def start(self, text: str, where: str) -> subprocess.Popen[str]:
        address = re.search(r"--mllp (\S+):(\d+)", self.expand(text))
        if address is not None and _accepts(address.group(1), int(address.group(2))):
            pytest.fail(f"{where}\n{address.group(0)}: an earlier command still listens there")
        return subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=self.cwd, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def background(self, text: str, where: str) -> None:
        job = self.start(text, where)
        self.jobs.append((where, job))
        wait_listening(self.expand(text), job, where)

    def serve_once(self, text: str, where: str) -> None:
        job = self.start(text, where)
        try:
            wait_listening(self.expand(text), job, where)
        finally:
            stop(job, where)

    def expand(self, text: str) -> str:
        """The text with ``$NAME`` replaced as the shell will, and without quotes."""
        text = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: self.env.get(m.group(1), ""), text)
        return text.replace('"', "").replace("'", "")

    def close(self) -> None:
        try:
            for where, job in reversed(self.jobs):
                stop(job, where)
        finally:
            for server in self.servers:
                server.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def wait_listening(text: str, job: subprocess.Popen[str], where: str) -> None:
    """Until the command's ``--mllp`` address accepts connections (none: until it runs)."""
    address = re.search(r"--mllp (\S+):(\d+)", text)
    deadline = time.monotonic() + DEADLINE
    while address is not None:
        if job.poll() is not None:
            pytest.fail(f"{where}\nended with {job.returncode}\n{job.communicate()[0]}")
        if _accepts(address.group(1), int(address.group(2))):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{where}\nnot listening after {DEADLINE} s")
        time.sleep(0.05)  # polling a port, not waiting for time to pass


def stop(job: subprocess.Popen[str], where: str) -> None:
    """Ctrl-C, as a reader stops a server: a clean exit (0 or 130), no traceback."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGINT)
    out, _ = job.communicate(timeout=120)
    assert job.returncode in (0, 130), f"{where}\nexit {job.returncode}\n{out}"
    assert "Traceback" not in out, f"{where}\n{out}"


# ---------------------------------------------------------------------------- transcripts

MSH_VOLATILE = (7, 10)  # MSH-7 (when) and MSH-10 (a random control id)


def _steady(line: str) -> str:
    if line.startswith("MSH|"):
        fields = line.split("|")
        for n in MSH_VOLATILE:
            if n - 1 < len(fields):
                fields[n - 1] = "…"
        line = "|".join(fields)
    return re.sub(r"\b[0-9a-f]{20}\b", "…", line)


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in _steady(line).split("…")))


def assert_transcript(expected: list[str], output: str, where: str) -> None:
    """Each shown line matches an output line, in order; without a line of only ``…`` the
    output has no other lines."""
    want = [line.strip() for line in expected if line.strip()]
    got = [_steady(line.strip()) for line in output.splitlines() if line.strip()]
    elastic = "…" in want
    at = 0
    for line in want:
        if line == "…":
            continue
        pattern = _pattern(line)
        while at < len(got) and not pattern.fullmatch(got[at]):
            if not elastic:
                break
            at += 1
        assert at < len(got) and pattern.fullmatch(got[at]), \
            f"{where}\nexpected: {line}\nin:\n{output}"
        at += 1
    if not elastic:
        assert len(got) == len(want), f"{where}\nexpected {len(want)} lines:\n{output}"


# ---------------------------------------------------------------------------- the tests


def _declared_files(page: Path) -> dict[str, list[str]]:
    """The files a page shows with ``$ cat FILE``, as shown."""
    return {c.text.split()[1]: c.expected or [] for s in sections(page) for c in s.commands
            if re.fullmatch(r"cat \S+", _comment_free(c.text))}


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[FhirServer]:
    """A SEKMET of this module's own with its pharmacy (filler) simulator on, for $BASE."""
    try:
        server = start_fhir_server(env={"FHIR_SIMULATOR": "true", "FHIR_SIMULATOR_DELAY": "0.3"})
    except Exception as exc:  # ServerUnavailable: skip, or fail under CI=true
        skip_or_fail(f"no FHIR test server: {exc}")
        raise
    yield server
    server.stop()


def _shell(tmp_path: Path, base: str) -> Shell:
    cwd = tmp_path / "reader"
    shutil.copytree(ROOT / "fixtures", cwd / "fixtures")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAFHIR_", "FHIR_")) and k not in ("CI_DEBUG",)}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", BASE=base,
               PYTHONUNBUFFERED="1", HOME=str(tmp_path / "home"))
    ports = {"8765": int(base.rsplit(":", 1)[1].split("/")[0]), "2575": free_port(),
             "2576": free_port()}
    shell = Shell(cwd, env, ports)
    for name, lines in _declared_files(README).items():  # kept from earlier sections
        (cwd / name).write_text("\n".join(shell.local(x) for x in lines) + "\n")
    return shell


@pytest.mark.parametrize("section", [
    pytest.param(s, id=s.title, marks=[pytest.mark.slow] if s.title in SLOW_SECTIONS else [])
    for s in README_SECTIONS])
def test_every_readme_section_runs_as_written(section, simulator_server, tmp_path):
    shell = _shell(tmp_path, simulator_server.base_url)
    try:
        for command in section.commands:
            if _comment_free(command.text) in SKIPPED:
                continue
            shell.run(command)
    finally:
        shell.close()


def test_the_skip_list_names_only_commands_the_readme_has():
    shown = {_comment_free(c.text) for s in sections(README) for c in s.commands}
    assert set(SKIPPED) <= shown, set(SKIPPED) - shown
    assert all(reason.strip() for reason in SKIPPED.values())


def _help(words: list[str]) -> str:
    done = subprocess.run([str(BIN / "mafhir"), *words, "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (words, done.stdout + done.stderr)
    return done.stdout


def _synopsis(text: str) -> tuple[list[str], list[str]]:
    """(the command's words, the options it shows) of one synopsis line."""
    words: list[str] = []
    for word in _comment_free(text).split()[1:]:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break
        words.append(word)
    return words, re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])\b", _comment_free(text))


def _synopsis_lines() -> list[tuple[str, Command]]:
    card = [(f"README.md:{CARD}", c) for s in sections(README) if s.title == CARD
            for c in s.commands]
    pages = [(f"{p.name}:{s.title}", c) for p in REFERENCE_PAGES if p.exists()
             for s in sections(p) for c in s.commands]
    return card + pages


@pytest.mark.parametrize(("where", "command"), _synopsis_lines(),
                         ids=[f"{w}:{c.line}" for w, c in _synopsis_lines()])
def test_every_command_and_option_the_docs_name_exists(where, command):
    for part in re.split(r";|&&|\|", _comment_free(command.text)):
        part = re.sub(r"^(\w+=\S+ )+", "", part.strip())  # VAR=value mafhir …
        if not part.startswith("mafhir "):
            continue
        words, options = _synopsis(part)
        # the longest prefix of words that is a command (the rest are arguments)
        while words:
            done = subprocess.run([str(BIN / "mafhir"), *words, "--help"],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0 and done.stdout.startswith("Usage: mafhir"):
                break
            words.pop()
        shown = _help(words)
        missing = [o for o in options if not re.search(rf"(?<![\w-]){o}\b", shown)]
        assert not missing, f"{where}: `mafhir {' '.join(words)}` has no {missing}"


# ---------------------------------------------------------------------------- the tutorial


def _tutorial_block(lang: str, under: str, starts: str = "") -> str:
    """The first ``lang`` block under the heading ``under`` of the plugin tutorial."""
    for heading, block_lang, _, text in fenced_blocks(TUTORIAL):
        if heading == under and block_lang == lang and text.startswith(starts):
            return text + "\n"
    raise AssertionError(f"docs/plugins.md: no {lang} block under {under!r}")


def test_the_plugin_tutorial_builds_a_plugin_that_loads_sends_and_passes_its_tests(tmp_path):
    """docs/plugins.md from its text: the pyproject.toml, the module (the register_mappers
    and register_connectors examples), the mapper kit's tests. Installed as an installer
    would (the module and a dist-info with the pyproject's entry points on the path; no
    build backend is downloaded in a test), then listed by `mafhir plugins`, its tests run,
    and its connector used by `mafhir send`."""
    pyproject = tomllib.loads(_tutorial_block("toml", "From an empty folder to `mafhir plugins`"))
    assert pyproject["build-system"]["build-backend"] and pyproject["build-system"]["requires"]
    name, version = pyproject["project"]["name"], pyproject["project"]["version"]
    (module_name,) = pyproject["project"]["entry-points"]["mafhir"].values()
    site = tmp_path / "site"
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(
        "[mafhir]\n" + "".join(f"{k} = {v}\n"
                               for k, v in pyproject["project"]["entry-points"]["mafhir"].items()))
    (site / f"{module_name}.py").write_text(
        _tutorial_block("python", "register_mappers")
        + _tutorial_block("python", "register_connectors").replace(
            "from mafhir import ConnectorSpec, hookimpl", "from mafhir import ConnectorSpec"))
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_reminders.py").write_text(
        _tutorial_block("python", "Testing a task kind: the mapper kit", "# tests/"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAFHIR_")},
           "PYTHONPATH": str(site)}

    def mafhir(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "mafhir"), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)

    listed = mafhir("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "reminder_call" in listed.stdout and '"reminders"' in listed.stdout
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tests)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert " passed" in ran.stdout
    call = {"task": "reminder_call", "id": "r-1", "patient": {"mrn": "MS-10022"},
            "at": "2026-11-27T09:00:00-05:00", "note": "reminded of the 3 pm visit"}
    (tmp_path / "call.json").write_text(json.dumps(call))
    sent = mafhir("send", "--to", "counting:nowhere", "--clinic",
                  str(ROOT / "fixtures" / "clinic-day" / "clinic.json"), "call.json")
    assert sent.returncode == 0, sent.stderr
    assert "resource(s) to counting" in sent.stderr  # the tutorial's connector took it
