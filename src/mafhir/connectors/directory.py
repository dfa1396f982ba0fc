"""The ``dir`` connector: delivers Bundles to a folder (the embedded default, no server).

Each Bundle is written as ``bundles/<n>.json``; on close, the latest state of every
resource goes to ``<ResourceType>.ndjson``, the bulk-data layout other FHIR tools read.
Files are written under a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..hookspecs import hookimpl
from ..io import dumps
from ..registry import ConnectorSpec

__all__ = ["DirectoryConnector", "register_connectors"]

JSON = dict[str, Any]


class DirectoryConnector:
    """Writes transaction Bundles, and each resource's latest state as per-type NDJSON.

    A resource is known by its type and first business identifier, the same key the
    Bundles' conditional writes use, so the NDJSON holds what a server would hold after
    these Bundles: one Patient per MRN, the appointment in its last status.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "bundles").mkdir(parents=True, exist_ok=True)
        self._count = len(list((self.root / "bundles").glob("*.json")))
        self._latest: dict[tuple[str, str], JSON] = {}

    def send(self, bundle: JSON, name: str | None = None) -> JSON:
        self._count += 1
        target = self.root / "bundles" / f"{name or f'{self._count:05d}'}.json"
        _write_atomic(target, dumps(bundle, pretty=True))
        for entry in bundle.get("entry", []):
            resource = entry.get("resource")
            if not resource:
                continue
            key = _identity(resource, entry.get("fullUrl", ""))
            if key in self._latest and (entry.get("request") or {}).get("ifNoneExist"):
                continue  # a conditional create leaves what is there, as a server would
            self._latest[key] = resource
        return {"resourceType": "Bundle", "type": "transaction-response",
                "location": str(target), "entries": len(bundle.get("entry", []))}

    def stored(self) -> dict[str, int]:
        """How many distinct resources of each type the folder holds."""
        counts: dict[str, int] = {}
        for rtype, _ in self._latest:
            counts[rtype] = counts.get(rtype, 0) + 1
        return counts

    def close(self) -> None:
        by_type: dict[str, list[bytes]] = {}
        for (rtype, _), resource in self._latest.items():
            by_type.setdefault(rtype, []).append(dumps(resource))
        for rtype, lines in by_type.items():
            _write_atomic(self.root / f"{rtype}.ndjson", b"\n".join(lines) + b"\n")


def _identity(resource: JSON, full_url: str) -> tuple[str, str]:
    idents = resource.get("identifier")
    first = idents[0] if isinstance(idents, list) and idents else None
    key = f"{first.get('system')}|{first.get('value')}" if first else full_url
    return resource["resourceType"], key


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("dir", DirectoryConnector,
                           "write Bundles and per-type NDJSON to a local folder"))
