"""Clearinghouse settings: ``[x12]`` (what the clinic is) and ``[x12.NAME]`` (one partner).

```toml
[x12]
sender_id = "CLINIC01"           # ISA06 / GS02 / CORE SenderID
provider_npi = "1234567893"      # 2100B NM1*1P (check digit verified)
provider_name = "Main Street Clinic"
usage = "P"                      # ISA15: P production, T test

[x12.acme]
url = "https://core.acme-clearinghouse.example/eligibility"
receiver_id = "ACMECH"           # ISA08 / GS03 / CORE ReceiverID
envelope = "soap"                # soap (SOAP 1.2 + WS-Security) or mime (HTTP multipart)
auth = "basic"                   # basic | certificate | none
username = "clinic01"
password = "${ACME_PASSWORD}"    # or password_env = "ACME_PASSWORD" / password_file
# certificate: client_cert = "/etc/mafhir/acme.pem", client_key = "/etc/mafhir/acme.key"
verify = true                    # or a CA bundle path; false only on purpose
```

A ``[x12.NAME]`` key overrides the ``[x12]`` one of the same name. Secrets are named,
never written (a literal password is refused); an unknown key is an error naming it.
The control-number counter lives in the outbox database (``control_db``, else
``$MAFHIR_OUTBOX``, else ``mafhir.db``, as ``mafhir sync`` uses).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mafhir.errors import InputError, Problem
from mafhir_fhir_rest.auth import Secret
from mafhir_fhir_rest.config import find_config

__all__ = ["Partner", "load_partner", "npi_valid"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_ID = r"^[A-Za-z0-9 .\-_]{1,15}$"


def npi_valid(npi: str) -> bool:
    """The NPI check digit (Luhn over ``80840`` + the first nine digits)."""
    if not re.fullmatch(r"\d{10}", npi):
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


class Partner(BaseModel):
    """One clearinghouse (or payer) and the clinic's identity towards it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = "default"
    url: str | None = None
    sender_id: str = Field(pattern=_ID)
    sender_qualifier: str = Field("ZZ", pattern=r"^[A-Z0-9]{2}$")
    receiver_id: str = Field(pattern=_ID)
    receiver_qualifier: str = Field("ZZ", pattern=r"^[A-Z0-9]{2}$")
    provider_npi: str
    provider_name: str = Field(min_length=1, max_length=60)
    usage: Literal["P", "T"] = "P"
    envelope: Literal["soap", "mime"] = "soap"
    auth: Literal["basic", "certificate", "none"] = "none"
    username: str = ""
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool | str = True
    timeout: float = Field(30.0, gt=0, le=600)
    max_attempts: int = Field(3, ge=1, le=20)
    control_db: str | None = None

    @field_validator("provider_npi")
    @classmethod
    def _npi(cls, value: str) -> str:
        if not npi_valid(value):
            raise ValueError("is not an NPI (10 digits with a valid check digit)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/@\s]+(/\S*)?$", value):
            raise ValueError("must be an http(s) URL without credentials")
        return value

    def secret(self) -> Secret | None:
        """The password, from the environment or a file (never from the file itself)."""
        if self.password is not None:
            ref = _ENV_REF.match(self.password)
            if ref is None:  # refused when read; kept as a guard
                raise InputError([Problem("password", "write it as \"${ENV_VAR}\"",
                                          "security")])
            return Secret.from_env(ref.group(1))
        if self.password_env:
            return Secret.from_env(self.password_env)
        if self.password_file:
            return Secret.from_file(self.password_file)
        return None

    @property
    def control_location(self) -> str:
        return self.control_db or os.environ.get("MAFHIR_OUTBOX") or "mafhir.db"

    def __repr__(self) -> str:  # no password reference in logs either way
        return f"Partner({self.name!r}, url={self.url!r}, envelope={self.envelope!r})"


def load_partner(name: str, config: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> Partner:
    """``[x12]`` merged with ``[x12.NAME]`` from mafhir.toml (``config``, $MAFHIR_CONFIG,
    ./mafhir.toml), then ``overrides``; every problem named at once."""
    path = Path(config) if config else find_config()
    data: dict[str, Any] = {}
    if path is not None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError([Problem(str(path), f"cannot be read ({exc.strerror})",
                                      "not-found")]) from None
        try:
            data = tomllib.loads(raw.decode("utf-8")).get("x12") or {}
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError([Problem(path.name, f"not valid TOML ({exc})", "structure")]) \
                from None
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    table = data.get(name) if name else None
    if name and name != "default" and not isinstance(table, dict) and not overrides:
        known = ", ".join(k for k, v in data.items() if isinstance(v, dict)) or "none"
        raise InputError([Problem(f"x12.{name}", f"no [x12.{name}] table in "
                                  f"{path or 'mafhir.toml'} (known: {known})", "not-found")])
    merged = {**shared, **(table or {}), **(overrides or {}), "name": name or "default"}
    problems = [Problem(f"x12.{name}.{k}", "looks like a secret written in the file; "
                        "write it as \"${ENV_VAR}\" (or password_env / password_file)",
                        "security")
                for k, v in merged.items()
                if k == "password" and not (isinstance(v, str) and _ENV_REF.match(v))]
    if problems:
        raise InputError(problems)
    try:
        return Partner.model_validate(merged)
    except ValidationError as exc:
        raise InputError([Problem(f"x12.{name}." + ".".join(str(p) for p in e["loc"]),
                                  str(e["msg"]).removeprefix("Value error, "),
                                  "required" if e["type"] == "missing" else "value")
                          for e in exc.errors(include_url=False, include_input=False)]) \
            from None
