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

Secrets are named, never written: ``password = "${EHR_PASSWORD}"`` (an environment
variable), or ``*_env`` / ``*_file``. A literal value under a key that looks like a secret
is refused, and so is a key the file does not know (``Password =`` would otherwise be
ignored while the secret sits in the file): each is named with the file, and an unknown
key with the nearest known one. Values are checked by type (``max_attempts = "abc"`` is an
error, not a traceback); ``url`` and ``token_url`` must be http(s) without credentials.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mafhir.configfile import find_config
from mafhir.errors import InputError, Problem
from mafhir.redact import CREDENTIALS_IN_URL, carries_credentials

from .auth import BasicAuth, BearerAuth, Secret, SigningKey, SmartBackendAuth
from .client import FhirClient, RetryPolicy

__all__ = ["Destination", "client_for", "find_config", "load_destination"]

#: Tables a mafhir.toml may hold besides ``[destinations.*]`` (read by other commands:
#: ``iis`` by the mafhir-iis plugin, ``x12`` by the x12-eligibility plugin).
TOP_LEVEL = ("clinic", "destinations", "iis", "x12")
#: ``${NAME}``: the value is the environment variable NAME.
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SECRET_WORDS = ("pass", "secret", "token", "credential", "apikey", "api_key", "private")
_NAMES_NOT_SECRETS = ("_env", "_file", "_url", "_id")
_CODES = {"missing": "required", "literal_error": "code-invalid", "bool_type": "value",
          "int_type": "value", "string_type": "value", "greater_than_equal": "value",
          "less_than_equal": "value"}


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if carries_credentials(value):
        raise ValueError("must not carry credentials (user:password@, ?access_token=); use "
                         "username and password = \"${ENV_VAR}\"")
    return value


class Destination(BaseModel):
    """One ``[destinations.NAME]`` table (types strict: TOML has its own ints and bools)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    auth: Literal["none", "basic", "bearer", "smart"] = "none"
    username: str = ""
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    token: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    key_file: str | None = None
    jwks_file: str | None = None
    key_id: str | None = None
    algorithm: Literal["RS384", "ES384"] | None = None
    scope: str = "system/*.read system/*.write"
    verify: bool | str = True
    page_size: int = Field(100, ge=1, le=10_000)
    max_attempts: int = Field(5, ge=1, le=100)

    _url = field_validator("url")(_check_url)

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


def _looks_secret(key: str) -> bool:
    low = key.lower()
    return not low.endswith(_NAMES_NOT_SECRETS) and any(w in low for w in _SECRET_WORDS)


def _key_problems(table: dict[str, Any], known: tuple[str, ...], where: str) -> list[Problem]:
    """Unknown keys (with a did-you-mean) and literal secrets, never quoting a value."""
    out = []
    for key, value in table.items():
        if key not in known:
            near = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else \
                f" (known: {', '.join(known)})"
            out.append(Problem(f"{where}.{key}", f"unknown key{hint}", "structure"))
        if _looks_secret(key) and not (isinstance(value, str) and ENV_REF.match(value)):
            out.append(Problem(f"{where}.{key}", "looks like a secret written in the file; "
                                                 "refused: write it as \"${ENV_VAR}\" (or "
                                                 f"{key.lower()}_env / {key.lower()}_file)",
                               "security"))
    return out


def _type_problems(exc: ValidationError, where: str) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ()) if isinstance(p, str))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(Problem(f"{where}.{loc}" if loc else where, msg,
                           _CODES.get(str(err.get("type")), "value")))
    return out


def read_config(config: Path) -> dict[str, Any]:
    """The whole file, every destination checked: keys, secrets, types. All problems at once."""
    try:
        data = tomllib.loads(config.read_text())
    except OSError as exc:
        raise InputError([Problem(str(config), f"cannot read ({exc.strerror})", "not-found")]) \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(str(config), f"not valid TOML ({exc})", "structure")]) \
            from None
    problems = _key_problems({k: v for k, v in data.items() if not isinstance(v, dict)},
                             TOP_LEVEL, str(config))
    problems += [Problem(f"{config}: {k}", f"unknown table (did you mean '{near[0]}'?)"
                         if (near := difflib.get_close_matches(k.lower(), TOP_LEVEL, n=1))
                         else f"unknown table (known: {', '.join(TOP_LEVEL)})", "structure")
                 for k, v in data.items() if isinstance(v, dict) and k not in TOP_LEVEL]
    dests = data.get("destinations") or {}
    if not isinstance(dests, dict):
        problems.append(Problem(f"{config}: destinations", "must be a table", "structure"))
        dests = {}
    known = tuple(Destination.model_fields)
    for name, table in dests.items():
        where = f"{config}: destinations.{name}"
        if not isinstance(table, dict):
            problems.append(Problem(where, "must be a table ([destinations.NAME])",
                                    "structure"))
            continue
        found = _key_problems(table, known, where)
        problems += found
        if not found:
            try:
                Destination.model_validate(table)
            except ValidationError as exc:
                problems += _type_problems(exc, where)
    if problems:
        raise InputError(problems)
    return data


def load_destination(name: str, config: Path | None) -> dict[str, Any]:
    """The ``[destinations.<name>]`` table of a file that passed :func:`read_config`."""
    if config is None:
        raise InputError([Problem("--to", f"'{name}' is not a URL and no mafhir.toml was found",
                                  "not-found")])
    dests = read_config(config).get("destinations") or {}
    if name not in dests:
        known = ", ".join(sorted(dests)) or "none"
        raise InputError([Problem(f"{config}: destinations",
                                  f"no destination '{name}' (known: {known})", "not-found")])
    return dict(dests[name])


def _secret(dest: Destination, key: str, where: str) -> Secret:
    ref = getattr(dest, key)
    if ref is not None:
        match = ENV_REF.match(ref)
        assert match is not None  # read_config refused anything else
        return Secret.from_env(match.group(1))
    if getattr(dest, f"{key}_env"):
        return Secret.from_env(str(getattr(dest, f"{key}_env")))
    if getattr(dest, f"{key}_file"):
        return Secret.from_file(str(getattr(dest, f"{key}_file")))
    raise InputError([Problem(f"{where}.{key}", f"auth needs {key} = \"${{ENV_VAR}}\", "
                                                f"{key}_env or {key}_file", "required")])


def client_for(target: str, config_path: str | None = None, *, insecure: bool = False,
               page_size: int | None = None) -> FhirClient:
    """A client for a URL or a named destination; TLS verified unless ``insecure``."""
    if target.startswith(("http://", "https://")):
        if carries_credentials(target):
            raise InputError([Problem("--to", CREDENTIALS_IN_URL, "security")])
        table: dict[str, Any] = {"url": target}
        where = "--to"
    else:
        table = load_destination(target, find_config(config_path))
        where = f"destinations.{target}"
    try:
        dest = Destination.model_validate(table)
    except ValidationError as exc:
        raise InputError(_type_problems(exc, where)) from None
    verify: bool | str = False if insecure else dest.verify
    auth: Any = None
    if dest.auth == "basic":
        auth = BasicAuth(dest.username, _secret(dest, "password", where))
    elif dest.auth == "bearer":
        auth = BearerAuth(_secret(dest, "token", where))
    elif dest.auth == "smart":
        if not dest.token_url or not dest.client_id:
            key = "token_url" if not dest.token_url else "client_id"
            raise InputError([Problem(f"{where}.{key}", "is required for smart auth",
                                      "required")])
        if dest.jwks_file:
            signing = SigningKey.from_jwks_file(dest.jwks_file, dest.key_id, dest.algorithm)
        elif dest.key_file:
            signing = SigningKey.from_pem_file(dest.key_file, dest.key_id, dest.algorithm)
        else:
            raise InputError([Problem(f"{where}.key_file", "smart auth needs key_file or "
                                                           "jwks_file", "required")])
        auth = SmartBackendAuth(dest.token_url, dest.client_id, signing, dest.scope,
                                verify=verify)
    retry = RetryPolicy(max_attempts=dest.max_attempts)
    return FhirClient(dest.url, auth=auth, verify=verify, retry=retry,
                      page_size=page_size or dest.page_size)
