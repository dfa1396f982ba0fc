"""Compiled packages read on demand: one definition decoded when the validator first asks.

Why: the shipped tables (R4 core subset, US Core 6.1.0 and 7.0.0) are 2.7 MB of JSON; decoding
them all cost ~130 ms of every ``mafhir validate``, which then uses a handful of them. The
first time a compiled file is used, it is decoded once and written to the user cache as an
index (URL → where its entry lies, and its version) followed by each entry on its own
(``marshal``); later runs read the index and decode only the entries they look up. The cache
file is named by the SHA-256 of the compiled file, so a changed package never meets a stale
index. Where the cache cannot be written, the file is decoded whole, as before.

Cache folder: ``$MAFHIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/mafhir``, else ``~/.cache/mafhir``.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .compiler import FORMAT, load_compiled

__all__ = ["LazyTable", "cache_root", "load_lazy"]

JSON = dict[str, Any]
#: Bumped when the index layout changes (the compiled format's own version is in the name).
LAYOUT = 1
_TABLES = ("structures", "valuesets")


def cache_root() -> Path:
    """mafhir's own cache folder (not the FHIR package cache of ``packages.cache_dir``)."""
    configured = os.environ.get("MAFHIR_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mafhir"


class LazyTable(Mapping[str, JSON]):
    """A compiled package's structures or value sets by URL, each decoded when first read."""

    def __init__(self, blob: bytes, index: dict[str, tuple[int, int, str]]) -> None:
        self._blob = blob
        self._index = index  # url -> (offset, length, version)
        self._decoded: dict[str, JSON] = {}

    def __getitem__(self, url: str) -> JSON:
        found = self._decoded.get(url)
        if found is None:
            offset, length, _ = self._index[url]
            found = self._decoded[url] = marshal.loads(self._blob[offset:offset + length])
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, url: object) -> bool:
        return url in self._index

    def version_of(self, url: str) -> str:
        """The entry's ``version`` ("" when it has none), without decoding it."""
        return self._index[url][2]


def _index_bytes(compiled: JSON) -> bytes:
    """The cache file: a marshalled header (name, version, format, per table its index),
    then every entry marshalled on its own."""
    body = bytearray()
    tables: dict[str, dict[str, tuple[int, int, str]]] = {}
    for table in _TABLES:
        index = tables[table] = {}
        for url, entry in compiled[table].items():
            data = marshal.dumps(entry)
            index[url] = (len(body), len(data), str(entry.get("version") or ""))
            body += data
    header = marshal.dumps({"layout": LAYOUT, "format": compiled.get("format"),
                            "name": compiled["name"], "version": compiled["version"],
                            "tables": tables})
    return len(header).to_bytes(8, "little") + header + bytes(body)


def _read_index(raw: bytes) -> JSON:
    size = int.from_bytes(raw[:8], "little")
    header = marshal.loads(raw[8:8 + size])
    if not isinstance(header, dict) or header.get("layout") != LAYOUT:
        raise ValueError("not an index of this layout")
    body = raw[8 + size:]
    out: JSON = {k: header[k] for k in ("name", "version")}
    if header.get("format") is not None:
        out["format"] = header["format"]
    for table in _TABLES:
        out[table] = LazyTable(body, header["tables"][table])
    return out


def load_lazy(path: Path, cache: Path | None = None) -> JSON:
    """The compiled package at ``path`` (``name``, ``version``, ``format``, and its
    ``structures`` and ``valuesets`` as :class:`LazyTable`), through the cache; decoded
    whole when the cache cannot be used."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:40]
    folder = (cache if cache is not None else cache_root()) / f"compiled-v{FORMAT}"
    target = folder / f"{digest}.idx"
    try:
        return _read_index(target.read_bytes())
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        pass  # absent or unreadable: (re)build it
    compiled = load_compiled(path)
    data = _index_bytes(compiled)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return compiled  # no cache here: decoded whole, as without one
    return _read_index(data)
