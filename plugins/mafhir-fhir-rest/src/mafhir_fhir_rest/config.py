"""Destinations: a URL, or a name in ``mafhir.toml`` with its auth and TLS settings.

```toml
[destinations.ehr]
url = "https://ehr.example.org/fhir/R4"
auth = "smart"                  # none | basic | bearer | smart
client_id = "mafhir-clinic"
token_url = "https://ehr.example.org/oauth2/token"
key_file = "/etc/mafhir/ehr-key.pem"     # or jwks_file = "...", with key_id = "..."
algorithm = "RS384"             # or ES384 (default: from the key)
scope = "system/Patient.rs system/Observation.cu"
# basic:  username = "...", password_env = "EHR_PASSWORD" (or password_file)
# bearer: token_env = "EHR_TOKEN" (or token_file)
verify = true                   # or a CA bundle path; false only on purpose
page_size = 100
```

Secrets are named, never written: ``*_env`` (an environment variable) or ``*_file``. A
literal ``password``/``token`` in the file is refused, so a config under version control
cannot leak one.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from mafhir.errors import InputError, Problem

from .auth import BasicAuth, BearerAuth, Secret, SigningKey, SmartBackendAuth
from .client import FhirClient, RetryPolicy

__all__ = ["client_for", "find_config", "load_destination"]

FORBIDDEN = ("password", "token", "client_secret", "private_key")


def find_config(path: str | None = None) -> Path | None:
    """``path``, else ``$MAFHIR_CONFIG``, else ``./mafhir.toml`` when it exists."""
    chosen = path or os.environ.get("MAFHIR_CONFIG")
    if chosen:
        return Path(chosen)
    here = Path("mafhir.toml")
    return here if here.exists() else None


def load_destination(name: str, config: Path | None) -> dict[str, Any]:
    """The ``[destinations.<name>]`` table, checked for literal secrets."""
    if config is None:
        raise InputError([Problem("--to", f"'{name}' is not a URL and no mafhir.toml was found")])
    try:
        data = tomllib.loads(config.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError([Problem(str(config), f"cannot read ({exc})")]) from None
    dests = data.get("destinations") or {}
    if name not in dests:
        known = ", ".join(sorted(dests)) or "none"
        raise InputError([Problem(f"{config.name}: destinations",
                                  f"no destination '{name}' (known: {known})")])
    table = dict(dests[name])
    for key in FORBIDDEN:
        if key in table:
            raise InputError([Problem(f"{config.name}: destinations.{name}.{key}",
                                      f"secrets are not written in the file; use {key}_env "
                                      f"or {key}_file")])
    if not isinstance(table.get("url"), str):
        raise InputError([Problem(f"{config.name}: destinations.{name}.url", "is required")])
    return table


def _secret(table: dict[str, Any], key: str, where: str) -> Secret:
    if table.get(f"{key}_env"):
        return Secret.from_env(str(table[f"{key}_env"]))
    if table.get(f"{key}_file"):
        return Secret.from_file(str(table[f"{key}_file"]))
    raise InputError([Problem(f"{where}.{key}_env", f"auth needs {key}_env or {key}_file")])


def client_for(target: str, config_path: str | None = None, *, insecure: bool = False,
               page_size: int | None = None) -> FhirClient:
    """A client for a URL or a named destination; TLS verified unless ``insecure``."""
    if target.startswith(("http://", "https://")):
        table: dict[str, Any] = {"url": target}
        where = "--to"
    else:
        table = load_destination(target, find_config(config_path))
        where = f"destinations.{target}"
    verify: bool | str = table.get("verify", True)
    if insecure:
        verify = False
    kind = table.get("auth", "none")
    auth: Any = None
    if kind == "basic":
        auth = BasicAuth(str(table.get("username", "")), _secret(table, "password", where))
    elif kind == "bearer":
        auth = BearerAuth(_secret(table, "token", where))
    elif kind == "smart":
        for key in ("token_url", "client_id"):
            if not table.get(key):
                raise InputError([Problem(f"{where}.{key}", "is required for smart auth")])
        if table.get("jwks_file"):
            key = SigningKey.from_jwks_file(table["jwks_file"], table.get("key_id"),
                                            table.get("algorithm"))
        elif table.get("key_file"):
            key = SigningKey.from_pem_file(table["key_file"], table.get("key_id"),
                                           table.get("algorithm"))
        else:
            raise InputError([Problem(f"{where}.key_file", "smart auth needs key_file or "
                                                           "jwks_file")])
        auth = SmartBackendAuth(table["token_url"], table["client_id"], key,
                                table.get("scope", "system/*.read system/*.write"),
                                verify=verify)
    elif kind != "none":
        raise InputError([Problem(f"{where}.auth", "must be none, basic, bearer or smart")])
    retry = RetryPolicy(max_attempts=int(table.get("max_attempts", 5)))
    return FhirClient(table["url"], auth=auth, verify=verify, retry=retry,
                      page_size=page_size or int(table.get("page_size", 100)))
