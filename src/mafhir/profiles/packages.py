"""FHIR NPM packages (``package.tgz``) read into an index of conformance resources.

A package is a tarball whose ``package/package.json`` names it and whose
``package/*.json`` hold StructureDefinitions, ValueSets and CodeSystems (examples live
under ``package/example/`` and are not definitions). The validator needs them by
canonical URL, so that is what this module builds; compiling them is
``mafhir.profiles.compiler``'s job.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem

__all__ = ["Package", "cache_dir", "read_folder", "read_tgz"]

JSON = dict[str, Any]
#: The resource types a validator reads from a package.
KINDS = ("StructureDefinition", "ValueSet", "CodeSystem")


@dataclass
class Package:
    """One package's definitions, each kind by canonical URL (and ``url|version``)."""

    name: str
    version: str
    definitions: dict[str, dict[str, JSON]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS})
    examples: dict[str, JSON] = field(default_factory=dict)  # file name -> resource

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def add(self, resource: JSON) -> None:
        kind = resource.get("resourceType")
        url = resource.get("url")
        if kind not in self.definitions or not isinstance(url, str):
            return
        self.definitions[kind][url] = resource
        if resource.get("version"):
            self.definitions[kind][f"{url}|{resource['version']}"] = resource

    def unique(self, kind: str) -> Iterator[JSON]:
        """Each definition of ``kind`` once (the index holds two keys per versioned one)."""
        seen: set[int] = set()
        for resource in self.definitions[kind].values():
            if id(resource) not in seen:
                seen.add(id(resource))
                yield resource


def _manifest(data: bytes, where: str) -> tuple[str, str]:
    try:
        manifest = json.loads(data)
        return str(manifest["name"]), str(manifest["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError([Problem(where, "package.json has no name and version", "invalid")]) \
            from exc


def _indexed(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> set[str] | None:
    """The files ``package/.index.json`` lists as definitions, or None (read them all)."""
    stream = tar.extractfile(member) if member is not None else None
    if stream is None:
        return None
    try:
        files = json.loads(stream.read())["files"]
        return {f["filename"] for f in files if f.get("resourceType") in KINDS}
    except (ValueError, KeyError, TypeError):
        return None


def read_tgz(path: str | Path, examples: bool = False) -> Package:
    """A ``package.tgz``; ``examples`` also keeps ``package/example/*.json``."""
    where = str(path)
    try:
        tar = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise InputError([Problem(where, f"is not a readable package.tgz ({exc})",
                                  "invalid")]) from exc
    with tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        manifest = members.get("package/package.json")
        if manifest is None:
            raise InputError([Problem(where, "has no package/package.json", "invalid")])
        stream = tar.extractfile(manifest)
        assert stream is not None
        package = Package(*_manifest(stream.read(), where))
        wanted = _indexed(tar, members.get("package/.index.json"))
        for name, member in sorted(members.items()):
            if not name.endswith(".json") or name.endswith("package.json") \
                    or name.split("/")[-1].startswith("."):
                continue
            folder = name.split("/")[:-1]
            if folder not in (["package"], ["package", "example"]):
                continue
            if folder[-1] == "example" and not examples:
                continue
            if folder == ["package"] and wanted is not None \
                    and name.split("/")[-1] not in wanted:
                continue  # the package's index says it is no definition
            stream = tar.extractfile(member)
            if stream is None:
                continue
            try:
                resource = json.loads(stream.read())
            except ValueError:
                continue  # a package's non-FHIR JSON (e.g. an index) is not ours to judge
            if not isinstance(resource, dict):
                continue
            if folder[-1] == "example":
                package.examples[name.split("/")[-1]] = resource
            else:
                package.add(resource)
    return package


def read_folder(folder: str | Path) -> Package:
    """A package unpacked in a folder (``package.json`` beside the definitions, any depth)."""
    root = Path(folder)
    package = Package(*_manifest((root / "package.json").read_bytes(), str(root)))
    for path in sorted(root.rglob("*.json")):
        if path.name == "package.json" or path.name.startswith("."):
            continue
        try:
            resource = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(resource, dict):
            package.add(resource)
    return package


def cache_dir() -> Path:
    """Where ``mafhir ig add`` keeps packages: ``$MAFHIR_FHIR_PACKAGES``, else the standard
    FHIR package cache ``~/.fhir/packages`` (shared with the HL7 tools)."""
    configured = os.environ.get("MAFHIR_FHIR_PACKAGES")
    return Path(configured) if configured else Path.home() / ".fhir" / "packages"
