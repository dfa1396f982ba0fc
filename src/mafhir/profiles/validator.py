"""The profile validator's public face: ``Validator.default().validate(resource)``."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from . import fastwalk
from .compiler import FORMAT, compile_package, write_compiled
from .context import Definitions
from .engine import check, validate_resource
from .issue import Issue
from .lazytables import load_lazy
from .packages import cache_dir, read_folder, read_tgz
from .run import Run, evaluator
from .tree import Structure

__all__ = ["SHIPPED", "BundleContext", "Validator", "bundle_index", "install_package",
           "installed_packages"]

JSON = dict[str, Any]
#: The compiled tables that ship with mafhir (R4 core subset, US Core 6.1.0 and 7.0.0).
SHIPPED = Path(__file__).parent / "compiled"
_COMPILED_NAME = f"mafhir-compiled-v{FORMAT}.json.gz"
#: Canonical prefix of the R4 core definitions (a type's base profile).
CORE = "http://hl7.org/fhir/StructureDefinition/"
#: Short names accepted by ``--ig``.
ALIASES = {"us-core": "hl7.fhir.us.core", "r4": "hl7.fhir.r4.core",
           "r4-core": "hl7.fhir.r4.core"}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


def installed_packages(cache: Path | None = None) -> list[JSON]:
    """Every compiled package: the shipped ones, then the cache's (compiled on add); each
    definition is decoded when first used (:mod:`.lazytables`)."""
    found: dict[str, JSON] = {}
    for path in sorted(SHIPPED.glob("*.json.gz")):
        data = load_lazy(path)
        found[f"{data['name']}@{data['version']}"] = data
    folder = cache if cache is not None else cache_dir()
    if folder.is_dir():
        for path in sorted(folder.glob(f"*/{_COMPILED_NAME}")):
            data = load_lazy(path)
            found.setdefault(f"{data['name']}@{data['version']}", data)
    return sorted(found.values(), key=lambda p: (p["name"], _version_key(p["version"])),
                  reverse=True)


def install_package(tgz: str | Path, cache: Path | None = None) -> JSON:
    """``mafhir ig add``: unpack a package.tgz into the FHIR package cache
    (``<name>#<version>/package/``) and compile it beside, with every installed package
    as its context (dependencies lend code systems and value sets)."""
    import shutil
    import tarfile

    package = read_tgz(tgz)
    folder = (cache if cache is not None else cache_dir()) / f"{package.name}#{package.version}"
    compiled = compile_package(package)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz, "r:gz") as tar:
            tar.extractall(folder, filter="data")
        write_compiled(compiled, folder / _COMPILED_NAME)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError([Problem(str(folder), f"cannot be written ({exc.strerror})",
                                  "invalid")]) from exc
    return compiled


class Validator:
    """Checks resources against compiled profiles; build once, use for many resources."""

    def __init__(self, packages: Iterable[JSON], prefer: str | None = None,
                 must_support: bool = False) -> None:
        ordered = list(packages)
        if prefer:
            name, _, version = prefer.partition("@")
            name = ALIASES.get(name, name)
            chosen = [p for p in ordered if p["name"] == name
                      and (not version or p["version"] == version)]
            if not chosen:
                raise InputError([Problem("--ig", f"{prefer} is not installed (see "
                                          "`mafhir ig list`, `mafhir ig add FILE.tgz`)",
                                          "not-found")])
            ordered = chosen[:1] + [p for p in ordered if p is not chosen[0]]
        self.packages = ordered
        self.ig = ordered[0] if prefer else None
        self.must_support = must_support
        self.defs = Definitions()
        for package in ordered:
            self.defs.add(package)
        self.defs.validate_quietly = self._conforms
        self._evaluate = evaluator()

    @classmethod
    def default(cls, prefer: str | None = None, must_support: bool = False) -> Validator:
        """The shipped packages plus those ``mafhir ig add`` installed."""
        return cls(_installed(), prefer, must_support)

    def ig_profiles(self, resource_type: str) -> list[str]:
        """The profile of the preferred IG for a type, when it has exactly one."""
        if self.ig is None:
            return []
        urls = [url for url, s in self.ig["structures"].items()
                if s["type"] == resource_type and s["kind"] == "resource"
                and s["derivation"] == "constraint"]
        return urls if len(urls) == 1 else []

    def validate(self, resource: JSON, profiles: Sequence[str] | None = None,
                 checked_elsewhere: Collection[str] = (),
                 bundle: BundleContext | None = None, errors_only: bool = False,
                 ) -> list[Issue]:
        """Issues of ``resource`` (a resource or a Bundle, as a JSON dict) against
        ``profiles`` (canonical URLs) plus its ``meta.profile`` claims, else the base
        R4 definition of its type. A claimed profile with no definition installed is a
        warning, unless in ``checked_elsewhere`` (a plugin's own rules check it).
        ``bundle`` (``BundleContext.of(the_bundle)``) resolves references of an entry
        checked alone, and remembers which entries meet which profiles.

        ``errors_only``: only errors (and fatal ones) are returned, so a resource the
        compiled walk (``fastwalk.clean``) finds without error costs no interpretation."""
        run = Run(self.defs, must_support=self.must_support, evaluate=self._evaluate,
                  elsewhere=frozenset(checked_elsewhere))
        explicit = []
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        wanted = list(profiles or [])
        if not wanted and isinstance(rtype, str):
            wanted = self.ig_profiles(rtype)
        for url in wanted:
            found = self.defs.structure(url)
            if found is None:
                run.add("error", "not-found", str(rtype or "Resource"), None,
                        f"profile {url} is not installed; add its package with "
                        "`mafhir ig add FILE.tgz`", "profile")
            elif found.type != rtype:
                run.add("error", "invalid", str(rtype or "Resource"), None,
                        f"{url} is a profile of {found.type}, not {rtype}", "profile")
            else:
                explicit.append(found)
        if not isinstance(resource, dict) or not isinstance(rtype, str):
            run.add("error", "structure", "Resource", None, "is not a FHIR resource (no "
                    "resourceType)", "structure")
            return run.issues
        if rtype == "Bundle":
            run.bundle = bundle_index(resource) or NoBundle()
        elif bundle is not None:
            run.bundle = bundle.entries
            run.verdicts = bundle.verdicts
        else:
            run.bundle = NoBundle()
        if errors_only and not run.issues and not self.must_support:
            if fastwalk.clean(resource, run, explicit):
                if bundle is not None:
                    _remember(resource, explicit, bundle)
                return []
            # not clean, or not sure: the engine says what, on a run of its own
            run = Run(self.defs, evaluate=self._evaluate, elsewhere=run.elsewhere,
                      bundle=run.bundle, verdicts=run.verdicts)
        validate_resource(resource, run, rtype, explicit)
        for key in sorted(run.not_evaluated):
            run.issues.append(Issue("information", "informational", rtype,
                                    f"{key}: invariant not evaluated "
                                    + ("(FHIRPath engine not available)"
                                       if self._evaluate is None else
                                       "(expression not supported)"), key))
        issues = _unique(run.issues)
        return [i for i in issues if i.severity in ("error", "fatal")] if errors_only \
            else issues

    def _conforms(self, resource: JSON, url: str) -> bool:
        """Does ``resource`` (a reference's target) meet ``url`` with no error? The
        compiled walk answers a clean target; the engine only what it is unsure of."""
        structure = self.defs.structure(url)
        if structure is None:
            return True  # cannot tell: do not accuse the reference
        # the walk checks the target's claimed profiles too: its True is also check()'s
        if fastwalk.clean(resource, Run(self.defs, evaluate=self._evaluate, bundle=NoBundle()),
                          [structure]):
            return True
        run = Run(self.defs, evaluate=self._evaluate, resource=resource)
        check(resource, structure, run, str(resource.get("resourceType", "")))
        return not any(i.severity in ("error", "fatal") for i in run.issues)


class NoBundle(dict[str, JSON]):
    """The Bundle of a resource checked alone: nothing resolves in it, but it is not
    falsy. The compiled walk remembers a value found clean without a look around it; a
    reference looked at with no Bundle (falsy) counts as such, and a later check within a
    Bundle, where the same reference text resolves to an entry that must be checked too,
    would take that memory for its verdict. Truthy, the reference counts as a look
    around, so only Bundle-free verdicts are remembered."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return True


class BundleContext:
    """The entries of the Bundle an entry is checked in, for its references."""

    __slots__ = ("_neutral", "entries", "verdicts")

    def __init__(self, entries: dict[str, JSON]) -> None:
        self.entries = entries
        self.verdicts: dict[tuple[int, str], bool] = {}
        self._neutral: bool | None = None

    def neutral(self) -> bool:
        """Does every reference resolve here to a resource of the type its text names (or
        its text names none)? Then an entry clean within the Bundle is clean without it:
        within, a reference's target type comes from the entry and the target is checked
        too; without, the type comes from the text (``checks.reference``). Only a key
        (fullUrl) naming another type than its entry could pass within and not without;
        a reference resolves only by equalling a key, so the keys are all to look at."""
        if self._neutral is None:
            self._neutral = all(
                not isinstance(r.get("resourceType"), str)
                or _named_type(key) in (None, r["resourceType"])
                for key, r in self.entries.items())
        return self._neutral

    @classmethod
    def of(cls, bundle: JSON) -> BundleContext:
        return cls(bundle_index(bundle))


def _remember(resource: JSON, explicit: Iterable[Structure], bundle: BundleContext) -> None:
    """An entry the compiled walk found clean meets every profile it was checked against
    (its claims, else its base; and ``explicit``): record those verdicts, so a reference
    to it (a DiagnosticReport's result, say) does not walk it again. Only when the verdict
    is the one ``_conforms`` (which sees no Bundle) would give: see
    ``BundleContext.neutral``."""
    if not bundle.neutral():
        return
    rtype = resource.get("resourceType")
    urls = [s.url for s in explicit if s.type == rtype]
    meta = resource.get("meta")
    claims = meta.get("profile") if isinstance(meta, dict) else None
    urls += claims if isinstance(claims, list) else []
    if not urls and isinstance(rtype, str):
        urls.append(CORE + rtype)
    for url in urls:
        bundle.verdicts.setdefault((id(resource), url), True)


def _named_type(ref: str) -> str | None:
    """The resource type a reference's text names, as ``checks.reference`` reads it when
    the target is not in the Bundle."""
    if "?" in ref:
        return ref.split("?", 1)[0].rsplit("/", 1)[-1]
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def bundle_index(bundle: JSON) -> dict[str, JSON]:
    """Bundle entries by fullUrl and by ``Type/id``, for resolving references."""
    out: dict[str, JSON] = {}
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if isinstance(entry.get("fullUrl"), str):
            out[entry["fullUrl"]] = resource
        if isinstance(resource.get("id"), str) and isinstance(resource.get("resourceType"),
                                                              str):
            out[f"{resource['resourceType']}/{resource['id']}"] = resource
    return out


def _unique(issues: list[Issue]) -> list[Issue]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.severity, issue.expression, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


@lru_cache(maxsize=1)
def _installed() -> tuple[JSON, ...]:
    return tuple(installed_packages())


def compile_folder(folder: Path) -> JSON:
    """An unpacked package (the corpus's R4 core subset), compiled."""
    return compile_package(read_folder(folder))
