"""The ``dir`` connector: delivers Bundles to a folder (the embedded default, no server).

Each Bundle is written as ``bundles/<n>.json``; every resource is appended to
``<ResourceType>.ndjson``, the bulk-data layout other FHIR tools read. Files are written
under a temporary name and renamed, so a crash never leaves half a Bundle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..hookspecs import hookimpl
from ..io import dumps
from ..registry import ConnectorSpec

__all__ = ["DirectoryConnector", "register_connectors"]

JSON = dict[str, Any]


class DirectoryConnector:
    """Writes transaction Bundles and per-type NDJSON into ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "bundles").mkdir(parents=True, exist_ok=True)
        self._ndjson: dict[str, IO[bytes]] = {}
        self._count = len(list((self.root / "bundles").glob("*.json")))
        self.written: dict[str, int] = {}

    def send(self, bundle: JSON, name: str | None = None) -> JSON:
        self._count += 1
        target = self.root / "bundles" / f"{name or f'{self._count:05d}'}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_bytes(dumps(bundle, pretty=True))
        os.replace(tmp, target)
        for entry in bundle.get("entry", []):
            resource = entry.get("resource")
            if not resource:
                continue
            rtype = resource["resourceType"]
            out = self._ndjson.get(rtype)
            if out is None:
                out = self._ndjson[rtype] = open(self.root / f"{rtype}.ndjson", "ab")  # noqa: SIM115
            out.write(dumps(resource) + b"\n")
            self.written[rtype] = self.written.get(rtype, 0) + 1
        return {"resourceType": "Bundle", "type": "transaction-response",
                "location": str(target), "entries": len(bundle.get("entry", []))}

    def close(self) -> None:
        for out in self._ndjson.values():
            out.close()
        self._ndjson.clear()


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("dir", DirectoryConnector,
                           "write Bundles and per-type NDJSON to a local folder"))
