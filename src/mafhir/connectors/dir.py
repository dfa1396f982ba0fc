"""The ``dir`` connector: delivers Bundles to a folder (the embedded default, no server).

Each Bundle is written as ``bundles/<n>.json``; on close, the latest state of every
resource goes to ``<ResourceType>.ndjson``, the bulk-data layout other FHIR tools read.

The outbox opens one connector per worker thread (and ``mafhir worker`` processes may
share a folder), so nothing here may assume it is alone:

* a Bundle's file name is claimed with ``os.link`` from a temporary file of its own
  (a random name), which fails rather than overwrites when another writer took the name
  first — so no Bundle reported as sent is ever replaced by another, and a crash never
  leaves half a file;
* every connector on one folder in this process shares one table of the latest states
  (under a lock), loaded from the folder's NDJSON when the first one opens, so a second
  run adds to what the first wrote instead of replacing it;
* writing the NDJSON takes an exclusive file lock and keeps, for every resource this
  process did not touch, what the file already holds (another process's work).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import PermanentError
from ..hookspecs import hookimpl
from ..io import dumps, loads
from ..registry import ConnectorSpec

try:  # POSIX; elsewhere only writers of one process are coordinated
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DirectoryConnector", "register_connectors"]

JSON = dict[str, Any]
Key = tuple[str, str]
LOCK_FILE = ".mafhir-dir.lock"


class _Folder:
    """The state every connector open on one folder in this process shares."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.users = 0
        self.latest: dict[Key, JSON] = _read_ndjson(root)
        self.touched: set[Key] = set()
        self.next = len(list((root / "bundles").glob("*.json"))) + 1


_FOLDERS: dict[Path, _Folder] = {}
_FOLDERS_LOCK = threading.Lock()


def _open_folder(root: Path) -> _Folder:
    key = root.resolve()
    with _FOLDERS_LOCK:
        folder = _FOLDERS.get(key)
        if folder is None:
            folder = _FOLDERS[key] = _Folder(root)
        folder.users += 1
        return folder


def _release_folder(folder: _Folder) -> None:
    with _FOLDERS_LOCK:
        folder.users -= 1
        if folder.users <= 0:
            _FOLDERS.pop(folder.root.resolve(), None)


class DirectoryConnector:
    """Writes transaction Bundles, and each resource's latest state as per-type NDJSON.

    A resource is known by its type and first business identifier, the same key the
    Bundles' conditional writes use, so the NDJSON holds what a server would hold after
    these Bundles: one Patient per MRN, the appointment in its last status.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "bundles").mkdir(parents=True, exist_ok=True)
        self._folder = _open_folder(self.root)
        self._closed = False

    def send(self, bundle: JSON, name: str | None = None) -> JSON:
        data = dumps(bundle, pretty=True)
        if name:
            target = self.root / "bundles" / f"{name}.json"
            _write_atomic(target, data)
        else:
            target = self._write_new(data)
        folder = self._folder
        with folder.lock:
            for entry in bundle.get("entry", []):
                resource = entry.get("resource")
                if not resource:
                    continue
                key = _identity(resource, entry.get("fullUrl", ""))
                if key in folder.latest and (entry.get("request") or {}).get("ifNoneExist"):
                    continue  # a conditional create leaves what is there, as a server would
                folder.latest[key] = resource
                folder.touched.add(key)
        return {"resourceType": "Bundle", "type": "transaction-response",
                "location": str(target), "entries": len(bundle.get("entry", []))}

    def _write_new(self, data: bytes) -> Path:
        """``bundles/<n>.json`` under the next number no writer holds yet."""
        bundles = self.root / "bundles"
        tmp = _temporary(bundles, data)
        folder = self._folder
        try:
            while True:
                with folder.lock:
                    number = folder.next
                    folder.next += 1
                target = bundles / f"{number:05d}.json"
                try:
                    os.link(tmp, target)  # never replaces: another writer's name is skipped
                except FileExistsError:
                    continue
                return target
        finally:
            os.unlink(tmp)

    def stored(self) -> dict[str, int]:
        """How many distinct resources of each type the folder holds."""
        counts: dict[str, int] = {}
        with self._folder.lock:
            for rtype, _ in self._folder.latest:
                counts[rtype] = counts.get(rtype, 0) + 1
        return counts

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        folder = self._folder
        try:
            with folder.lock, _exclusive(self.root / LOCK_FILE):
                merged = _read_ndjson(self.root)  # what other processes wrote meanwhile
                merged.update({k: v for k, v in folder.latest.items() if k in folder.touched})
                by_type: dict[str, list[bytes]] = {}
                for (rtype, _), resource in merged.items():
                    by_type.setdefault(rtype, []).append(dumps(resource))
                for rtype, lines in by_type.items():
                    _write_atomic(self.root / f"{rtype}.ndjson", b"\n".join(lines) + b"\n")
        finally:
            _release_folder(folder)


def _identity(resource: JSON, full_url: str) -> Key:
    idents = resource.get("identifier")
    first = idents[0] if isinstance(idents, list) and idents else None
    key = f"{first.get('system')}|{first.get('value')}" if first else full_url
    return resource["resourceType"], key


def _read_ndjson(root: Path) -> dict[Key, JSON]:
    """The latest states a folder's ``<Type>.ndjson`` files hold (decimals exact)."""
    latest: dict[Key, JSON] = {}
    for path in sorted(root.glob("[A-Z]*.ndjson")):  # <ResourceType>.ndjson, not others
        with open(path, "rb") as lines:
            for lineno, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    resource = loads(line)
                except ValueError:  # not ours to overwrite: say so instead
                    raise PermanentError(f"{path}: line {lineno} is not JSON; the dir "
                                         "connector will not overwrite a file it cannot "
                                         "read") from None
                if isinstance(resource, dict) and resource.get("resourceType") == path.stem:
                    latest[_identity(resource, "")] = resource
    return latest


def _temporary(folder: Path, data: bytes) -> str:
    """A new hidden file in ``folder`` holding ``data``, flushed to disk; its path."""
    tmp = str(folder / f".{uuid.uuid4().hex}.tmp")  # its own name: no writer shares it
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _write_atomic(target: Path, data: bytes) -> None:
    """``target`` replaced whole by ``data`` (through a temporary file of its own)."""
    tmp = _temporary(target.parent, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (only this process's where flock
    is missing)."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("dir", DirectoryConnector,
                           "write Bundles and per-type NDJSON to a local folder"))
