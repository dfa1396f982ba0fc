"""The definitions a validation run can see: compiled packages, in order of preference,
plus base R4 structures derived from the fhir.resources models where no package has one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .modeltypes import CORE, ENUM_PREFIX, derive_structure
from .terminology import ValueSet
from .tree import Structure

__all__ = ["Definitions"]

JSON = dict[str, Any]


class Definitions:
    """Structures and value sets by canonical URL (``url`` or ``url|version``).

    Packages are added in order of preference: an unversioned URL found in two
    packages (US Core 6.1.0 and 7.0.0 share theirs) is the first added package's.
    Compiled data are read (a package's tables may decode an entry only when it is read)
    and turned into trees lazily, once each."""

    def __init__(self) -> None:
        self.packages: list[JSON] = []
        # url -> (the package's table, the entry's key in it): read when first asked for
        self._structure_data: dict[str, tuple[Mapping[str, JSON], str]] = {}
        self._valueset_data: dict[str, tuple[Mapping[str, JSON], str]] = {}
        self._structures: dict[str, Structure | None] = {}
        self._valuesets: dict[str, ValueSet | None] = {}
        self.validate_quietly: Any = None  # set by the Validator: resource, url -> errors?
        #: the compiled walk's plans (``mafhir.profiles.fastwalk``), built once per element
        self.plans: dict[Any, Any] = {}

    def add(self, compiled: JSON) -> None:
        self.packages.append(compiled)
        structures = compiled["structures"]
        version_of = getattr(structures, "version_of", None)
        for url in structures:
            self._structure_data.setdefault(url, (structures, url))
            version = version_of(url) if version_of else structures[url].get("version")
            if version:
                self._structure_data.setdefault(f"{url}|{version}", (structures, url))
        valuesets = compiled["valuesets"]
        for url in valuesets:
            self._valueset_data.setdefault(url, (valuesets, url))

    def _read(self, table: dict[str, tuple[Mapping[str, JSON], str]], url: str) -> JSON | None:
        found = table.get(url)
        return found[0][found[1]] if found is not None else None

    def structure(self, url: str) -> Structure | None:
        if url in self._structures:
            return self._structures[url]
        data = self._read(self._structure_data, url)
        if data is None and "|" in url:
            data = self._read(self._structure_data, url.split("|", 1)[0])
        if data is None and url.startswith(CORE):
            derived = derive_structure(url[len(CORE):])
            if derived is not None:
                data = derived[0]
                for vs_url, vs in derived[1].items():
                    self._valueset_data.setdefault(vs_url, ({vs_url: vs}, vs_url))
        found = Structure(data) if data is not None else None
        self._structures[url] = found
        return found

    def base(self, type_name: str) -> Structure | None:
        """The base R4 definition of a type (a package's, else the models')."""
        return self.structure(CORE + type_name)

    def valueset(self, url: str) -> ValueSet | None:
        if url in self._valuesets:
            return self._valuesets[url]
        data = self._read(self._valueset_data, url) \
            or self._read(self._valueset_data, url.split("|", 1)[0])
        found = ValueSet(url, data) if data is not None else None
        self._valuesets[url] = found
        return found

    def model_enum(self, type_name: str, element: str) -> ValueSet | None:
        """The code list the fhir.resources model of ``type_name`` has for ``element``."""
        derived = derive_structure(type_name) if type_name else None
        if derived is None:
            return None
        url = f"{ENUM_PREFIX}{type_name}.{element}"
        data = derived[1].get(url)
        return ValueSet(url, data) if data is not None else None

    def type_of(self, url: str) -> str | None:
        """The resource type a (target) profile constrains, when known."""
        found = self.structure(url)
        if found is not None:
            return found.type
        return url[len(CORE):] if url.startswith(CORE) else None
