"""Finds the engine plug-ins (the `batchgate.engines` entry points) and maps batch types to adapters."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from engines.base import Engine, EnginePlugin

ENTRY_POINTS = "batchgate.engines"


class PluginError(Exception):
    """The installed engine plug-ins do not fit together (or none is installed)."""


def discover() -> list[EnginePlugin]:
    """Every installed engine plug-in, in the order their entry points are found."""
    plugins: list[EnginePlugin] = []
    for entry in entry_points(group=ENTRY_POINTS):
        plugin = entry.load()
        for attribute in ("name", "batch_types", "settings", "enabled_with_users", "create"):
            if not hasattr(plugin, attribute):
                raise PluginError(f"engine plug-in {entry.name} ({entry.value}) has no {attribute}")
        plugins.append(plugin)
    if not plugins:
        raise PluginError(f"no engine is registered under the {ENTRY_POINTS} entry points: batchgate is not "
                          "installed (pip install -e . in a checkout registers the built-in engines)")
    check(plugins)
    return plugins


def check(plugins: Iterable[EnginePlugin]) -> None:
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for plugin in plugins:
        if not plugin.name.isidentifier() or plugin.name != plugin.name.lower():
            raise PluginError(f"engine name {plugin.name!r}: lower-case letters, digits and '_' only")
        if plugin.name in names:
            raise PluginError(f"two engines are named {plugin.name!r}")
        names[plugin.name] = plugin.name
        for batch_type in plugin.batch_types:
            if batch_type != batch_type.upper():
                raise PluginError(f"engine {plugin.name}: batch type {batch_type!r} must be upper case")
            if batch_type in owners:
                raise PluginError(f"batch type {batch_type} is offered by both {owners[batch_type]} and {plugin.name}")
            owners[batch_type] = plugin.name


class EngineRegistry:
    def __init__(self, engines: Iterable[Engine], enabled: Iterable[str], names: dict[str, str] | None = None) -> None:
        """`engines` by batch type; `enabled`: the batch types this gateway runs; `names`: batch type ->
        the engine's plug-in name (for GET /api/v1/engines)."""
        self._by_type: dict[str, Engine] = {}
        for engine in engines:
            for batch_type in engine.batch_types:
                self._by_type[batch_type] = engine
        self.enabled = frozenset(enabled) & frozenset(self._by_type)
        self._names = names or {}
        # By engine name, and within an engine SPARK before PYSPARK, as Settings.batch_types lists them.
        self.batch_types = tuple(sorted(self._by_type, key=lambda t: (self._name(t), t.startswith("PY"), t)))

    def _name(self, batch_type: str) -> str:
        return self._names.get(batch_type, batch_type.lower())

    def get(self, batch_type: str) -> Engine | None:
        """The engine for an enabled batch type, or None."""
        return self._by_type.get(batch_type) if batch_type in self.enabled else None

    def known(self, batch_type: str) -> bool:
        return batch_type in self._by_type

    def describe(self) -> list[dict[str, Any]]:
        """Each engine: its name, its batch types and which of them are enabled here."""
        by_name: dict[str, list[str]] = {}
        for batch_type in self.batch_types:
            by_name.setdefault(self._name(batch_type), []).append(batch_type)
        return [{"name": name, "batch_types": types, "enabled": [t for t in types if t in self.enabled]}
                for name, types in by_name.items()]

    async def close(self) -> None:
        """Let engines release what they hold (HTTP sessions); an engine opts in with `async close()`."""
        for engine in {id(e): e for e in self._by_type.values()}.values():
            closer = getattr(engine, "close", None)
            if closer is not None:
                await closer()
