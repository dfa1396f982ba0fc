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

import contextlib
import os
import sqlite3
import tempfile
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
    """The state every connector open on one folder in this process shares.

    The latest state of every resource is kept in a SQLite file of its own (in the
    system's temporary folder), not in memory: a run of 100,000 records stays as small as
    a run of ten. ``ord`` keeps each resource where it first appeared, as the NDJSON
    lists it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.users = 0
        fd, self.state_path = tempfile.mkstemp(prefix="mafhir-dir-", suffix=".sqlite")
        os.close(fd)
        self.db = sqlite3.connect(self.state_path, check_same_thread=False,
                                  isolation_level=None)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE state (rtype TEXT NOT NULL, ident TEXT NOT NULL, body BLOB NOT NULL,"
            " touched INTEGER NOT NULL, ord INTEGER NOT NULL, PRIMARY KEY (rtype, ident));"
            "CREATE TABLE disk (rtype TEXT NOT NULL, ident TEXT NOT NULL, body BLOB NOT NULL,"
            " ord INTEGER NOT NULL, PRIMARY KEY (rtype, ident));")
        self.ord = 0
        self._load(root, "state")
        self.next = len(list((root / "bundles").glob("*.json"))) + 1

    def _load(self, root: Path, table: str) -> None:
        """The folder's ``<Type>.ndjson`` into ``table`` (a later line of a key wins, at
        the place of the first)."""
        self.db.execute("BEGIN")
        try:
            if table == "disk":
                self.db.execute("DELETE FROM disk")
            touched = ", 0" if table == "state" else ""
            for (rtype, ident), line in _iter_ndjson(root):
                self.ord += 1
                self.db.execute(f"INSERT INTO {table} VALUES (?, ?, ?{touched}, ?) "
                                "ON CONFLICT (rtype, ident) DO UPDATE SET body = excluded.body",
                                (rtype, ident, line, self.ord))
        finally:
            self.db.execute("COMMIT")

    def put(self, key: Key, body: bytes, only_if_new: bool) -> None:
        self.ord += 1
        if only_if_new:  # a conditional create leaves what is there, as a server would
            self.db.execute("INSERT INTO state VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                            (*key, body, self.ord))
        else:
            self.db.execute("INSERT INTO state VALUES (?, ?, ?, 1, ?) ON CONFLICT (rtype, "
                            "ident) DO UPDATE SET body = excluded.body, touched = 1",
                            (*key, body, self.ord))

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT rtype, count(*) FROM state GROUP BY rtype"))

    def merged(self) -> Iterator[tuple[str, bytes]]:
        """(type, NDJSON line) of what the folder holds now (``disk``: read again, for
        other processes' work) with what this process wrote in its place, in order."""
        rows = self.db.execute(
            "SELECT d.rtype, coalesce(s.body, d.body), 0 AS grp, d.ord FROM disk d "
            "LEFT JOIN state s ON s.rtype = d.rtype AND s.ident = d.ident AND s.touched = 1 "
            "UNION ALL SELECT s.rtype, s.body, 1, s.ord FROM state s WHERE s.touched = 1 AND "
            "NOT EXISTS (SELECT 1 FROM disk d WHERE d.rtype = s.rtype AND d.ident = s.ident) "
            "ORDER BY 1, 3, 4")
        for rtype, body, _, _ in rows:
            yield rtype, body

    def drop(self) -> None:
        self.db.close()
        with contextlib.suppress(OSError):
            os.unlink(self.state_path)


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
            folder.drop()


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
                folder.put(_identity(resource, entry.get("fullUrl", "")), dumps(resource),
                           bool((entry.get("request") or {}).get("ifNoneExist")))
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
        with self._folder.lock:
            return self._folder.counts()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        folder = self._folder
        try:
            with folder.lock, _exclusive(self.root / LOCK_FILE):
                folder._load(self.root, "disk")  # what other processes wrote meanwhile
                _write_by_type(self.root, folder.merged())
        finally:
            _release_folder(folder)


def _write_by_type(root: Path, rows: Iterator[tuple[str, bytes]]) -> None:
    """``<Type>.ndjson`` for each type in ``rows`` (grouped by type), each replaced whole,
    streamed through a temporary file."""
    out = None
    current = ""
    tmp = ""
    try:
        for rtype, line in rows:
            if rtype != current:
                if out is not None:
                    _finish(out, tmp, root / f"{current}.ndjson")
                current = rtype
                fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{rtype}.", suffix=".tmp")
                out = os.fdopen(fd, "wb")
            assert out is not None
            out.write(line.rstrip(b"\n") + b"\n")
        if out is not None:
            _finish(out, tmp, root / f"{current}.ndjson")
            out = None
    except BaseException:
        if out is not None:
            out.close()
            os.unlink(tmp)
        raise


def _finish(out: Any, tmp: str, target: Path) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.chmod(tmp, 0o666 & ~_UMASK)  # as a file the user created: mkstemp makes it 0600
    os.replace(tmp, target)


def _read_umask() -> int:
    mask = os.umask(0)  # read once, at import, before any writer thread starts
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _identity(resource: JSON, full_url: str) -> Key:
    idents = resource.get("identifier")
    first = idents[0] if isinstance(idents, list) and idents else None
    key = f"{first.get('system')}|{first.get('value')}" if first else full_url
    return resource["resourceType"], key


def _iter_ndjson(root: Path) -> Iterator[tuple[Key, bytes]]:
    """Each resource line of a folder's ``<Type>.ndjson`` files with its key, kept as the
    bytes it was written with (decimals exact)."""
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
                    yield _identity(resource, ""), line.rstrip(b"\r\n")


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
