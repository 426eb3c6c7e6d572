"""Maps batch types to engine adapters."""

from __future__ import annotations

from collections.abc import Iterable

from engines.base import Engine


class EngineRegistry:
    def __init__(self, engines: Iterable[Engine], enabled: Iterable[str]) -> None:
        self._by_type: dict[str, Engine] = {}
        for engine in engines:
            for batch_type in engine.batch_types:
                self._by_type[batch_type] = engine
        self.enabled = frozenset(enabled) & frozenset(self._by_type)

    def get(self, batch_type: str) -> Engine | None:
        """The engine for an enabled batch type, or None."""
        return self._by_type.get(batch_type) if batch_type in self.enabled else None

    def known(self, batch_type: str) -> bool:
        return batch_type in self._by_type

    async def close(self) -> None:
        """Let engines release what they hold (HTTP sessions); an engine opts in with `async close()`."""
        for engine in {id(e): e for e in self._by_type.values()}.values():
            closer = getattr(engine, "close", None)
            if closer is not None:
                await closer()
