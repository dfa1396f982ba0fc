"""Registries in ``mafhir.toml``: ``[iis]`` holds the clinic's defaults, ``[iis.NAME]`` each
registry (what it sets wins).

```toml
[iis]
facility_id = "MAPLE-0042"             # the clinic's id at the registry: MSH-4, facilityID
sending_organisation = "Maple Street Family Clinic"   # MSH-22
publicity = "02"                       # PD1-11 default (table 0215); protection = "N"

[iis.state]
transport = "soap"                     # or "mllp"
url = "https://iis.example.gov/iisservice"            # soap
# mllp = "iis.example.gov:6661"                        # mllp: HOST:PORT
receiving_application = "WIR"          # MSH-5
receiving_facility = "WIR"             # MSH-6
username = "${IIS_STATE_USERNAME}"     # or username_env = "IIS_STATE_USERNAME"
password = "${IIS_STATE_PASSWORD}"     # or password_env
verify = true                          # or a CA bundle path
```

Secrets are never written in the file: ``username`` and ``password`` must be
``"${ENV_VAR}"`` (or ``*_env`` names); without either, ``IIS_<NAME>_USERNAME`` /
``IIS_<NAME>_PASSWORD`` are read. An unknown key is refused with the nearest known one.
The file is ``$MAFHIR_CONFIG``, else ``./mafhir.toml``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mafhir.errors import InputError, Problem

from .soap import Credentials
from .vxu_out import VxuSettings

__all__ = ["IisConfig", "find_config", "load_iis"]

ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class IisConfig(BaseModel):
    """One registry's settings (``[iis]`` merged with ``[iis.NAME]``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = ""
    facility_id: str = ""
    sending_application: str = "MAFHIR"
    sending_organisation: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    receiving_organisation: str = ""
    processing_id: Literal["P", "T", "D"] = "P"
    publicity: str = ""
    protection: Literal["", "Y", "N"] = ""
    registry_status: str = ""
    transport: Literal["soap", "mllp"] = "soap"
    url: str = ""
    mllp: str = ""
    username: str | None = None
    password: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify: bool | str = True
    timeout: float = Field(30.0, gt=0, le=600)

    def settings(self) -> VxuSettings:
        """What the VXU writer needs."""
        return VxuSettings(
            facility_id=self.facility_id, sending_application=self.sending_application,
            receiving_application=self.receiving_application,
            receiving_facility=self.receiving_facility,
            sending_organisation=self.sending_organisation,
            receiving_organisation=self.receiving_organisation,
            processing_id=self.processing_id, publicity=self.publicity,
            protection=self.protection, registry_status=self.registry_status)

    def _env_name(self, key: str) -> str:
        ref = getattr(self, key)
        if ref:
            match = ENV_REF.match(ref)
            assert match is not None  # load_iis refused anything else
            return match.group(1)
        named = getattr(self, f"{key}_env")
        if named:
            return str(named)
        return f"IIS_{re.sub(r'[^A-Za-z0-9]', '_', self.name).upper()}_{key.upper()}"

    def credentials(self) -> Credentials:
        """Username and password from the environment (InputError naming the variables)."""
        return Credentials.from_env(self._env_name("username"), self._env_name("password"))


def find_config(path: str | None = None) -> Path | None:
    """``path``, else ``$MAFHIR_CONFIG``, else ``./mafhir.toml`` when it exists."""
    chosen = path or os.environ.get("MAFHIR_CONFIG")
    if chosen:
        return Path(chosen)
    here = Path("mafhir.toml")
    return here if here.exists() else None


def _problems(table: dict[str, Any], where: str) -> list[Problem]:
    known = tuple(k for k in IisConfig.model_fields if k != "name")
    out = []
    for key, value in table.items():
        if isinstance(value, dict):
            continue
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            out.append(Problem(f"{where}.{key}", "unknown key" + (f" (did you mean "
                                                                  f"'{near[0]}'?)" if near
                                                                  else ""), "structure"))
        elif key in ("username", "password") and not (isinstance(value, str)
                                                        and ENV_REF.match(value)):
            out.append(Problem(f"{where}.{key}", "is written in the file; refused: write "
                                                 f"\"${{ENV_VAR}}\" (or {key}_env)",
                               "security"))
    return out


def load_iis(name: str, config: Path | None = None) -> IisConfig:
    """Registry ``name`` from the file (every problem at once, as an InputError)."""
    config = config or find_config()
    if config is None:
        raise InputError([Problem("iis", f"no mafhir.toml found to read registry '{name}' "
                                         "from (set MAFHIR_CONFIG)", "not-found")])
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError([Problem(str(config), f"cannot be read ({exc.strerror})",
                                  "not-found")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError([Problem(str(config), f"not valid TOML ({exc})", "structure")]) \
            from None
    section = data.get("iis")
    if not isinstance(section, dict):
        raise InputError([Problem(f"{config}: iis", "there is no [iis] table", "not-found")])
    table = section.get(name)
    if not isinstance(table, dict):
        known = ", ".join(sorted(k for k, v in section.items() if isinstance(v, dict)))
        raise InputError([Problem(f"{config}: iis", f"no registry '{name}' (known: "
                                                    f"{known or 'none'})", "not-found")])
    problems = _problems(section, f"{config}: iis") + \
        _problems(table, f"{config}: iis.{name}")
    if problems:
        raise InputError(problems)
    merged = {k: v for k, v in section.items() if not isinstance(v, dict)}
    merged.update(table)
    try:
        found = IisConfig.model_validate({**merged, "name": name})
    except ValidationError as exc:
        raise InputError([Problem(f"{config}: iis.{name}." + ".".join(
            str(p) for p in err.get("loc", ())), str(err.get("msg", "invalid")), "value")
            for err in exc.errors(include_url=False, include_input=False)]) from None
    if found.transport == "soap" and not found.url.startswith(("https://", "http://")):
        raise InputError([Problem(f"{config}: iis.{name}.url", "a SOAP registry needs its "
                                                               "https:// URL", "required")])
    if found.transport == "mllp" and not re.match(r"^[^:\s]+:\d+$", found.mllp):
        raise InputError([Problem(f"{config}: iis.{name}.mllp", "an MLLP registry needs "
                                                                "HOST:PORT", "required")])
    return found
