"""Profile rules known by URL before their modules load (``mafhir validate``'s start-up).

Why: a plugin's ``register_profiles`` hook imports its rule modules, and those pull in what
the rules share with the plugin's mappers (the lab plugin's codes load the whole HL7 v2
layer): over a third of the CPU of ``mafhir validate one.json``, for rules that a resource
of another type never runs. So the first run of a plugin's hook is remembered in the user
cache — URL, resource type and title of each profile it registers — and later runs
register stand-ins from that index: each one's ``check`` runs the hook (once) and then
the real rule. The index is named by a digest of the plugin's source files (path, size,
modification time) and of this layout, so changed code never meets a stale index. Where
the cache cannot be read or written, the hook runs at once, as before.

Cache folder: that of :func:`mafhir.profiles.lazytables.cache_root` (``$MAFHIR_CACHE_DIR``,
else ``$XDG_CACHE_HOME/mafhir``, else ``~/.cache/mafhir``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any

from .errors import PluginError
from .registry import Profile

__all__ = ["indexed_profiles", "source_digest"]

#: Bumped when the index file's layout changes.
LAYOUT = 1

Hook = Callable[..., object]  # a register_profiles hook: called with one ``register``


def _cache_root() -> Path:
    """The folder of :func:`mafhir.profiles.lazytables.cache_root` (not imported: that
    package loads the profile engine)."""
    configured = os.environ.get("MAFHIR_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mafhir"


@cache
def _folder_digest(folder: str) -> str:
    digest = hashlib.sha256(f"{os.path.abspath(folder)}\0".encode())
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for file in sorted(files):
            if file.endswith((".pyc", ".pyo")):
                continue
            stat = os.stat(os.path.join(root, file))
            digest.update(f"{os.path.relpath(os.path.join(root, file), folder)}\0"
                          f"{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def source_digest(name: str, sources: Iterable[str]) -> str:
    """A digest of plugin ``name`` and of every file under the ``sources`` folders
    (relative path, size, modification time): it changes whenever the code can have."""
    digest = hashlib.sha256(f"{LAYOUT}\0{name}\0".encode())
    for folder in sources:
        digest.update(_folder_digest(folder).encode())
    return digest.hexdigest()[:40]


def _run(hook: Hook) -> list[Any]:
    items: list[Any] = []
    hook(items.append)
    return items


def _entries(items: Iterable[Profile]) -> list[list[str]]:
    return [[p.url, p.resource_type, p.title] for p in items]


class _Rules:
    """One plugin's hook, run the first time one of its rules is needed."""

    def __init__(self, name: str, hook: Hook, expected: list[list[str]], index: Path) -> None:
        self.name, self.hook, self.expected, self.index = name, hook, expected, index
        self._lock = threading.Lock()
        self._real: dict[str, Profile] | None = None

    def real(self) -> dict[str, Profile]:
        with self._lock:
            if self._real is None:
                items = _run(self.hook)
                if not all(isinstance(p, Profile) for p in items) \
                        or _entries(items) != self.expected:
                    self.index.unlink(missing_ok=True)  # the next run indexes afresh
                    raise PluginError(f"plugin '{self.name}': its profiles differ from "
                                      f"their index in the cache; run the command again")
                self._real = {p.url: p for p in items}
            return self._real

    def check(self, url: str, resource: dict[str, Any]) -> Iterable[Any]:
        return self.real()[url].check(resource)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in name)


def _write(path: Path, entries: list[list[str]]) -> None:
    """Write the index at ``path``, and remove the older ones of the same plugin at the same
    place (its code changed since; another installation's are left alone)."""
    import tempfile  # only when an index is written: its imports cost every start

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob("*.json"):
            if old.name.rsplit("-", 1)[0] == prefix:
                old.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"profiles": entries}, out)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # no cache here: the hook runs on every start, as without one


def indexed_profiles(name: str, sources: Sequence[str], hook: Hook) -> list[Any]:
    """What plugin ``name``'s ``register_profiles`` ``hook`` registers: from the index of
    its ``sources`` (the plugin's folder and mafhir's) when there is one (stand-ins that load
    the rules when first used), else by running the hook now (and indexing what it gave,
    when all of it is :class:`Profile`: anything else is the registry's to refuse, every
    time). No ``sources``: the hook runs, and nothing is indexed."""
    if not sources:
        return _run(hook)
    try:
        where = hashlib.sha256("\0".join(map(os.path.abspath, sources)).encode())
        path = _cache_root() / "profile-index" / \
            f"{_safe(name)}-{where.hexdigest()[:12]}-{source_digest(name, sources)}.json"
    except OSError:  # the source cannot be read: no index
        return _run(hook)
    entries: list[list[str]] | None
    try:
        data = json.loads(path.read_bytes())
        entries = [[str(url), str(rtype), str(title)]
                   for url, rtype, title in data["profiles"]]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable
        entries = None
    if entries is None:
        items = _run(hook)
        if all(isinstance(p, Profile) for p in items):
            _write(path, _entries(items))
        return items
    rules = _Rules(name, hook, entries, path)
    return [Profile(url, rtype, partial(rules.check, url), title)
            for url, rtype, title in entries]
