"""A real FHIR R4 server (SEKMET) on a free loopback port, for tests and benchmarks.

The project's shared folder ships ``start``/``stop`` scripts that install SEKMET (pinned)
into a venv on first use. :func:`fhir_server` starts one server per process on a free
port and stops it at exit. ``MAFHIR_TEST_FHIR_URL`` points the tests at a server you run
yourself instead (nothing is started or stopped then).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FhirServer",
    "ServerUnavailable",
    "fhir_server",
    "find_server_dir",
    "free_port",
    "start_fhir_server",
]


class ServerUnavailable(RuntimeError):
    """No FHIR test server can be had here; ``reason`` says why."""


@dataclass
class FhirServer:
    """A running server: its base URL, and how to stop it (None: not ours to stop)."""

    base_url: str
    port: int | None = None
    server_dir: Path | None = None
    run_dir: Path | None = None

    def stop(self) -> None:
        if self.server_dir is None or self.port is None:
            return
        env = {**os.environ, "FHIR_PORT": str(self.port), "FHIR_RUN_DIR": str(self.run_dir)}
        subprocess.run([str(self.server_dir / "stop")], env=env, check=False,
                       capture_output=True, timeout=30)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.server_dir = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_server_dir() -> Path | None:
    """``$MAFHIR_FHIR_SERVER_DIR``, else ``../shared/fhir-test-server`` from the checkout."""
    env = os.environ.get("MAFHIR_FHIR_SERVER_DIR")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "fhir-test-server" for p in here.parents[2:6]]
    candidates.append(Path.cwd().parent / "shared" / "fhir-test-server")
    for c in candidates:
        if (c / "start").exists() and (c / "stop").exists():
            return c
    return None


_lock = threading.Lock()
_server: FhirServer | None = None
_failure: str | None = None


def fhir_server() -> FhirServer:
    """The process's FHIR test server, started on first call; raises ServerUnavailable."""
    global _server, _failure
    with _lock:
        if _server is not None:
            return _server
        if _failure is not None:
            raise ServerUnavailable(_failure)
        url = os.environ.get("MAFHIR_TEST_FHIR_URL")
        if url:
            _server = FhirServer(url.rstrip("/"))
            return _server
        server_dir = find_server_dir()
        if server_dir is None:
            _failure = ("the FHIR test server scripts were not found (../shared/fhir-test-server;"
                        " set MAFHIR_FHIR_SERVER_DIR, or MAFHIR_TEST_FHIR_URL for a running "
                        "server)")
            raise ServerUnavailable(_failure)
        try:
            _server = start_fhir_server(server_dir)
        except ServerUnavailable as exc:
            _failure = str(exc)
            raise
        return _server


def start_fhir_server(server_dir: Path | None = None,
                      env: dict[str, str] | None = None) -> FhirServer:
    """A new server of your own on a free port, with an empty store; call ``stop()``
    (it is also stopped at exit). For tests that need a server no other test writes to
    (exact counts of fixed identifiers, a whole day's schedule). ``env`` adds settings of
    this server only (``FHIR_SIMULATOR=true``…), leaving this process's environment alone.
    Raises ServerUnavailable.
    """
    server_dir = server_dir or find_server_dir()
    if server_dir is None:
        raise ServerUnavailable("the FHIR test server scripts were not found "
                                "(../shared/fhir-test-server; set MAFHIR_FHIR_SERVER_DIR)")
    for _ in range(3):  # a free port can be taken before the server binds it (xdist workers)
        port = free_port()
        run_dir = Path(tempfile.mkdtemp(prefix=f"mafhir-sekmet-{port}-"))
        done = _start(server_dir, port, run_dir, env or {})
        if done.returncode == 0 and done.stdout.strip().startswith("http"):
            break
        shutil.rmtree(run_dir, ignore_errors=True)
        if "already in use" not in done.stderr:
            break
    if done.returncode != 0 or not done.stdout.strip().startswith("http"):
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ServerUnavailable(f"the FHIR test server failed to start (exit {done.returncode}):"
                                f" {tail}")
    server = FhirServer(done.stdout.strip().splitlines()[-1], port, server_dir, run_dir)
    atexit.register(server.stop)
    return server


def _start(server_dir: Path, port: int, run_dir: Path,
           extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One run of the ``start`` script for ``port``; ServerUnavailable when it hangs."""
    env = {**os.environ, **extra, "FHIR_PORT": str(port), "FHIR_RUN_DIR": str(run_dir)}
    env.pop("FHIR_KEEP_DATA", None)
    try:
        return subprocess.run([str(server_dir / "start")], env=env, capture_output=True,
                              text=True, timeout=600)
    except subprocess.TimeoutExpired:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise ServerUnavailable("the FHIR test server did not start within 10 minutes") from None
