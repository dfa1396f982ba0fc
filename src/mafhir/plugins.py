"""Loading plugins: the built-in ones and those installed under the ``mafhir`` entry point.

Plugins load lazily, once, on first use (never at import time). One that fails to
import is recorded and reported by ``mafhir plugins``; the others keep working.

Environment:

* ``MAFHIR_LOAD_PLUGINS`` — comma-separated allow-list of installed (entry-point)
  plugins to load; the empty string loads none. Built-ins always load unless blocked.
* ``MAFHIR_DISABLE_PLUGINS`` — comma-separated block-list (entry-point or built-in names).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .entrypoints import entry_points
from .errors import PluginError
from .registry import Registry

__all__ = [
    "BUILTIN_PLUGINS",
    "DEFERRED",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "get_manager",
    "get_profiles",
    "get_registry",
    "plugin_contents",
    "plugin_infos",
    "register",
    "reset",
    "unknown_plugin_names",
]

ENTRY_POINT_GROUP = "mafhir"

#: Built-in features, registered through the same hooks as any installed plugin.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "mafhir.mappers.vitals",
    "mafhir.mappers.immunization",
    "mafhir.mappers.appointment",
    "mafhir.mappers.coverage",
    "mafhir.mappers.injection",
    "mafhir.mappers.intake",
    "mafhir.mappers.poc_test",
    "mafhir.mappers.skin_test",
    "mafhir.mappers.ekg",
    # --- issue 18 part B (w10): front-office task kinds ---
    "mafhir.mappers.phone_call",
    "mafhir.mappers.reminder",
    "mafhir.mappers.follow_up",
    # --- end issue 18 part B ---
    "mafhir.validation.profiles",
    "mafhir.connectors.dir",
    "mafhir.connectors.messaging",  # issue 18 part B (w10): reminders out
    "mafhir.cli.builtin",
    "mafhir.outbox.plugin",
    "mafhir.hl7v2.plugin",
    "mafhir.web.plugin",
)


#: Built-ins whose modules are heavy (task models, mappers, profile rules), with the hooks
#: each implements: a light stand-in is registered under the module's name and loads the
#: module when one of its hooks is first called, so that ``mafhir --help`` does not load
#: them. ``tests/test_plugins.py`` keeps these lists equal to the modules' hookimpls.
DEFERRED: dict[str, tuple[str, ...]] = {
    "mafhir.mappers.vitals": ("register_mappers",),
    "mafhir.mappers.immunization": ("register_mappers",),
    "mafhir.mappers.appointment": ("register_mappers",),
    "mafhir.mappers.coverage": ("register_mappers",),
    "mafhir.mappers.injection": ("register_mappers",),
    "mafhir.mappers.intake": ("register_mappers",),
    "mafhir.mappers.poc_test": ("register_mappers",),
    "mafhir.mappers.skin_test": ("register_mappers",),
    "mafhir.mappers.ekg": ("register_mappers",),
    # --- issue 18 part B (w10): front-office task kinds ---
    "mafhir.mappers.phone_call": ("register_mappers",),
    "mafhir.mappers.reminder": ("register_mappers",),
    "mafhir.mappers.follow_up": ("register_mappers",),
    # --- end issue 18 part B ---
    "mafhir.validation.profiles": ("register_profiles",),
    # the connectors' modules pull in SQLite, mafhir.io and its JSON reader: `--help` needs none
    "mafhir.connectors.dir": ("register_connectors",),
    "mafhir.connectors.messaging": ("register_connectors",),
    "mafhir.hl7v2.plugin": ("register_connectors",),
}


def _deferred(modname: str, hooks: tuple[str, ...]) -> types.ModuleType:
    """A stand-in for ``modname`` whose hooks import it and call its own."""
    stand_in = types.ModuleType(modname, f"{modname}, loaded when its hooks are called")
    for hook in hooks:
        setattr(stand_in, hook, _delegate(modname, hook))
    return stand_in


def _delegate(modname: str, hook: str) -> Any:
    def impl(register: Any) -> None:  # every deferred hook takes one ``register`` callback
        getattr(importlib.import_module(modname), hook)(register)

    impl.__name__ = hook
    return hookspecs.hookimpl(impl)


@dataclass
class PluginInfo:
    """One plugin as ``mafhir plugins`` reports it."""

    name: str
    version: str | None
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_registry: Registry | None = None
_infos: list[PluginInfo] = []
#: The plugins found by loading (built-ins and entry points), not registered in-process:
#: the ones whose profiles may be indexed (an in-process plugin's may change at will).
_installed: frozenset[str] = frozenset()


def _names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _load() -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    allow = _names("MAFHIR_LOAD_PLUGINS")
    block = _names("MAFHIR_DISABLE_PLUGINS") or set()
    infos: list[PluginInfo] = []
    from . import __version__

    for modname in BUILTIN_PLUGINS:
        if modname in block:
            continue
        module = _deferred(modname, DEFERRED[modname]) if modname in DEFERRED \
            else importlib.import_module(modname)
        pm.register(module, name=modname)
        infos.append(PluginInfo(modname, __version__, builtin=True))

    for ep in entry_points(ENTRY_POINT_GROUP):
        if ep.name in block or (allow is not None and ep.name not in allow):
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        version = ep.version
        try:
            _register_checked(pm, ep.load(), ep.name)
        except Exception as exc:  # a broken plugin must not take the others down
            infos.append(PluginInfo(ep.name, version, builtin=False,
                                    error=f"{type(exc).__name__}: {exc}"))
            continue
        infos.append(PluginInfo(ep.name, version, builtin=False))

    pm.check_pending()
    for info in infos:
        plugin = pm.get_plugin(info.name)
        if plugin is not None:
            info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    return pm, infos


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin``; a hook name that no hookspec declares is an error, not a no-op."""
    pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        raise PluginError(f"plugin '{name}': {exc}") from None


def get_manager() -> pluggy.PluginManager:
    """The plugin manager, loading plugins on first call."""
    global _manager, _infos, _installed
    with _lock:
        if _manager is None:
            _manager, _infos = _load()
            _installed = frozenset(info.name for info in _infos)
        return _manager


def plugin_infos() -> list[PluginInfo]:
    get_manager()
    return list(_infos)


def _collect(pm: pluggy.PluginManager) -> Registry:
    """Call every register hook; what each plugin registers is checked by the Registry.

    An installed plugin whose hook raises is marked failed (``mafhir plugins`` shows why)
    and none of what it registered is kept; the others load. A built-in that raises, or two
    plugins claiming one name, is an error for all: that is a broken installation.
    """
    registry = Registry()
    builtin = {info.name for info in _infos if info.builtin}
    failed: dict[str, str] = {}
    for hook_name, adder in (
        ("register_mappers", registry.add_mapper),
        ("register_profiles", registry.add_profile),
        ("register_connectors", registry.add_connector),
        ("register_converters", registry.add_converter),
        ("register_handlers", registry.add_handler),
    ):
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = impl.plugin_name
            if owner in failed:
                continue
            items: list[Any] = []
            try:
                impl.function(items.append)
            except Exception as exc:
                if owner in builtin:
                    raise PluginError(f"plugin '{owner}' failed in {hook_name}: {exc}") from exc
                failed[owner] = f"{hook_name} raised {type(exc).__name__}: {exc}"
                continue
            for item in items:
                adder(item, owner)
    for info in _infos:
        if info.name in failed:
            info.error = failed[info.name]
    tables: dict[str, dict[str, Any]] = {
        "task kind": registry.mappers, "profile": registry.profiles,
        "connector": registry.connectors, "converter": registry.converters,
        "message handler": registry.handlers}
    for (what, name), owner in list(registry.owners.items()):
        if owner in failed:  # what a failed plugin registered through its other hooks
            del tables[what][name]
            del registry.owners[(what, name)]
    return registry


_profiles: Registry | None = None


def get_profiles() -> Registry:
    """Only the profile rules the plugins register (``register_profiles``): what
    ``mafhir validate`` needs, without loading every plugin's mappers, converters and
    connectors. The full registry, once built, answers instead.

    A plugin's rules are known by URL, type and title from an index kept in the user
    cache (:mod:`mafhir.profileindex`); their modules load when a resource claiming one
    of them is checked. A plugin indexed for the first time has its hook run now."""
    global _profiles
    if _registry is not None:
        return _registry
    pm = get_manager()
    with _lock:
        if _profiles is None:
            from .profileindex import indexed_profiles

            registry = Registry()
            builtin = {info.name for info in _infos if info.builtin}
            for impl in pm.hook.register_profiles.get_hookimpls():
                try:
                    sources = _sources_of(impl) if impl.plugin_name in _installed else []
                    items = indexed_profiles(impl.plugin_name, sources, impl.function)
                except Exception as exc:
                    if impl.plugin_name in builtin:
                        raise PluginError(f"plugin '{impl.plugin_name}' failed in "
                                          f"register_profiles: {exc}") from exc
                    continue  # `mafhir plugins` names it; its rules are not used
                for item in items:
                    registry.add_profile(item, impl.plugin_name)
            _profiles = registry
        return _profiles


def _sources_of(impl: Any) -> list[str]:
    """The folders whose files make up the plugin of ``impl`` (its top-level package, and
    mafhir's, which its rules may take names from): what the profile index is keyed on.
    Empty when they cannot be told (then nothing is indexed)."""
    name = impl.plugin_name if impl.plugin_name in DEFERRED else \
        getattr(impl.plugin, "__name__", None)
    if not isinstance(name, str):
        return []
    folders = []
    for top in ("mafhir", name.partition(".")[0]):
        path = getattr(sys.modules.get(top), "__path__", None)
        if not path:
            return []
        folders.append(next(iter(path)))
    return sorted(set(folders))


def get_registry() -> Registry:
    """Everything the loaded plugins registered (built once)."""
    global _registry, _profiles
    pm = get_manager()
    with _lock:
        if _registry is None:
            _registry = _collect(pm)
        return _registry


def plugin_contents() -> dict[str, dict[str, list[str]]]:
    """What each loaded plugin adds, by plugin: task kinds, profiles, connectors,
    converters, message handlers (from the registry) and commands (its
    ``register_commands`` run against a scratch group)."""
    import click

    registry = get_registry()
    out: dict[str, dict[str, list[str]]] = {}
    for (what, name), owner in sorted(registry.owners.items()):
        out.setdefault(owner, {}).setdefault(what, []).append(name)
    pm = get_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        scratch = click.Group("scratch")
        try:
            impl.function(scratch)
        except Exception:  # shown as the plugin's load error elsewhere; not fatal here
            continue
        names = _command_names(scratch)
        if names:
            out.setdefault(impl.plugin_name, {})["command"] = names
    return out


def _command_names(group: Any, prefix: str = "") -> list[str]:
    import click

    names: list[str] = []
    for name, cmd in sorted(group.commands.items()):
        names.append(f"{prefix}{name}")
        if isinstance(cmd, click.Group):
            names += _command_names(cmd, f"{prefix}{name} ")
    return names


def unknown_plugin_names() -> list[str]:
    """Names in ``MAFHIR_LOAD_PLUGINS`` / ``MAFHIR_DISABLE_PLUGINS`` that match no built-in
    or installed plugin — a misspelling silently loads (or keeps) what was meant to be
    left out — each with a did-you-mean."""
    import difflib

    known = set(BUILTIN_PLUGINS) | {ep.name for ep in
                                    entry_points(ENTRY_POINT_GROUP)}
    out = []
    for var in ("MAFHIR_LOAD_PLUGINS", "MAFHIR_DISABLE_PLUGINS"):
        for name in sorted(_names(var) or ()):
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                out.append(f"{var}: '{name}' is no plugin{hint}")
    return out


def register(plugin: object, name: str) -> None:
    """Register a plugin object in-process (an embedding host, or a test).

    The registry is rebuilt on next use, so what the plugin registers is checked then.
    """
    global _registry, _profiles
    pm = get_manager()
    with _lock:
        _register_checked(pm, plugin, name)
        _infos.append(PluginInfo(name, getattr(plugin, "__version__", None), builtin=False,
                                 hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or [])))
        _registry = None
        _profiles = None


def reset() -> None:
    """Forget loaded plugins (tests and long-lived hosts that change the environment)."""
    global _manager, _registry, _infos, _profiles, _installed
    with _lock:
        _manager, _registry, _infos, _profiles = None, None, [], None
        _installed = frozenset()
