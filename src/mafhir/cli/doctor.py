"""``mafhir doctor``: what this installation will do, before it does it.

The effective clinic and where it came from, the settings file, the outbox, the
destinations (secrets never shown), every plugin with what it adds or why it failed, a
misspelt name in the plugin lists, and whether each destination answers. A clinic written
under a default namespace, a plugin that silently did not load or a destination that is
down are found here, not after a day of work.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from ..configfile import find_config
from ..redact import without_password

__all__ = ["Finding", "adds_summary", "doctor_command", "reach"]


@dataclass
class Finding:
    """One line of the report: a section, what was looked at, ok or not, and detail."""

    section: str
    subject: str
    ok: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _clinic(clinic_path: str | None, config: Path | None, table: dict[str, Any]
            ) -> Finding:
    from ..clinic import load_clinic
    from ..context import DEFAULT_CLINIC

    if clinic_path:
        source = f"--clinic {clinic_path}"
    elif os.environ.get("MAFHIR_CLINIC"):
        source = f"MAFHIR_CLINIC={os.environ['MAFHIR_CLINIC']}"
    elif isinstance(table.get("clinic"), dict):
        source = f"[clinic] of {config}"
    else:
        return Finding("clinic", "clinic", False,
                       f"none configured: identifiers would be written under "
                       f"{DEFAULT_CLINIC.system}; set --clinic, MAFHIR_CLINIC or [clinic] "
                       f"in mafhir.toml")
    clinic = load_clinic(clinic_path or os.environ.get("MAFHIR_CLINIC") or str(config))
    return Finding("clinic", clinic.name, True, f"{clinic.system} (from {source})",
                   {"name": clinic.name, "system": clinic.system, "npi": clinic.npi,
                    "source": source})


def _destinations(table: dict[str, Any]) -> list[tuple[str, str, Finding]]:
    """Each ``[destinations.NAME]``: its URL without credentials, its auth kind, and
    whether the environment variables it names are set (never their values)."""
    out = []
    for name, dest in sorted((table.get("destinations") or {}).items()):
        if not isinstance(dest, dict):
            continue
        url = str(dest.get("url", ""))
        missing = [v for k, v in dest.items()
                   if k.endswith("_env") and isinstance(v, str) and not os.environ.get(v)]
        missing += [v[2:-1] for v in dest.values()
                    if isinstance(v, str) and v.startswith("${") and v.endswith("}")
                    and not os.environ.get(v[2:-1])]
        detail = f"{without_password(url)} auth={dest.get('auth', 'none')}"
        if missing:
            detail += f"; not set in the environment: {', '.join(sorted(set(missing)))}"
        out.append((name, url, Finding("destinations", name, not missing, detail,
                                       {"url": without_password(url),
                                        "auth": dest.get("auth", "none")})))
    return out


def adds_summary(adds: dict[str, list[str]]) -> str:
    """``task kind: vitals; profile: us-core-bmi, …`` (profiles by their last segment)."""
    return "; ".join(f"{k}: {', '.join(n.rsplit('/', 1)[-1] if k == 'profile' else n for n in v)}"
                     for k, v in sorted(adds.items()))


def reach(target: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Does ``target`` answer? A FHIR base URL: ``GET /metadata`` (TLS verified); an
    ``mllp:HOST:PORT[/TYPE]``: a TCP connection. Anything else: not checked."""
    if target.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(target.rstrip("/") + "/metadata", timeout=timeout,
                             headers={"Accept": "application/fhir+json"})
        except requests.RequestException as exc:
            return False, f"no answer ({type(exc).__name__})"
        kind = ""
        with contextlib.suppress(ValueError, AttributeError):  # not JSON, or not an object
            kind = r.json().get("resourceType", "")
        ok = r.status_code < 400 and kind == "CapabilityStatement"
        what = "CapabilityStatement" if kind == "CapabilityStatement" else "no " \
            "CapabilityStatement"
        return ok, f"GET /metadata → {r.status_code}, {what}"
    if target.startswith("mllp:"):
        address = target[5:].partition("/")[0]
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True, f"TCP {address} accepts connections"
        except (OSError, ValueError) as exc:
            return False, f"TCP {address}: {getattr(exc, 'strerror', None) or exc}"
    return True, "not checked (no reachability test for this kind of destination)"


def findings(clinic_path: str | None, config_path: str | None, check: bool
             ) -> list[Finding]:
    from ..errors import MafhirError
    from ..plugins import plugin_contents, plugin_infos, unknown_plugin_names

    out: list[Finding] = []
    config = find_config(config_path)
    table: dict[str, Any] = {}
    if config is None:
        out.append(Finding("settings", "mafhir.toml", True, "none (./mafhir.toml or "
                                                              "MAFHIR_CONFIG)"))
    else:
        try:
            table = tomllib.loads(config.read_text("utf-8"))
            out.append(Finding("settings", str(config), True,
                               f"tables: {', '.join(sorted(table)) or 'none'}"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            out.append(Finding("settings", str(config), False, f"cannot be read: {exc}"))
    try:
        out.append(_clinic(clinic_path, config, table))
    except MafhirError as exc:
        out.append(Finding("clinic", "clinic", False, str(exc)))
    outbox = os.environ.get("MAFHIR_OUTBOX") or "mafhir.db"
    exists = "" if "://" in outbox else (" (exists)" if Path(outbox).exists()
                                         else " (not created yet)")
    out.append(Finding("outbox", without_password(outbox), True,
                       f"MAFHIR_OUTBOX{' (default)' if 'MAFHIR_OUTBOX' not in os.environ else ''}"
                       f"{exists}"))
    for name, url, finding in _destinations(table):
        out.append(finding)
        if check and url:
            ok, detail = reach(url)
            out.append(Finding("reachable", name, ok, detail))
    adds = plugin_contents()
    for info in plugin_infos():
        what = adds.get(info.name, {})
        summary = adds_summary(what)
        out.append(Finding("plugins", info.name, info.error is None,
                           f"failed to load: {info.error}" if info.error else
                           f"{info.version or '?'}{' (built-in)' if info.builtin else ''}"
                           f"{' — ' + summary if summary else ''}",
                           {"version": info.version, "builtin": info.builtin,
                            "adds": what, "error": info.error}))
    for line in unknown_plugin_names():
        out.append(Finding("plugins", "plugin list", False, line))
    return out


@click.command("doctor")
@click.option("--clinic", "clinic_path", type=click.Path(exists=True, dir_okay=False),
              help="Clinic settings to check (else MAFHIR_CLINIC, else mafhir.toml).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Settings file (default ./mafhir.toml or $MAFHIR_CONFIG).")
@click.option("--no-check", is_flag=True, help="Do not try to reach the destinations.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding.")
def doctor_command(clinic_path: str | None, config_path: str | None, no_check: bool,
                   as_json: bool) -> None:
    """What this installation will do: clinic, settings, outbox, destinations (and whether
    they answer), plugins and what each adds. Exit 1 when something needs fixing."""
    found = findings(clinic_path, config_path, check=not no_check)
    if as_json:
        for f in found:
            click.echo(json.dumps(asdict(f)))
    else:
        section = ""
        for f in found:
            if f.section != section:
                section = f.section
                click.echo(f"{section}:")
            mark = "ok " if f.ok else "!! "
            click.echo(f"  {mark}{f.subject}: {f.detail}" if f.detail else
                       f"  {mark}{f.subject}")
    sys.exit(0 if all(f.ok for f in found) else 1)
