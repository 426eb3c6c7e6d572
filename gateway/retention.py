"""Retention: terminal batches older than the configured age are purged, a small chunk at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from gateway.errors import Unavailable
from gateway.store import Store

log = structlog.get_logger("gateway.retention")

CHUNK = 200
PAUSE_BETWEEN_CHUNKS = 0.05  # let other work use the pool between two deletes


class Retention:
    def __init__(self, store: Store, *, days: float, every: float) -> None:
        self._store = store
        self._max_age_ms = int(days * 86_400_000)
        self._every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._max_age_ms > 0:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Unavailable:
                log.warning("retention.db_unavailable")
            except Exception:
                log.exception("retention.failed")
            await asyncio.sleep(self._every)

    async def purge_once(self, now_ms: int | None = None) -> int:
        """Purge everything due now, chunk by chunk; returns the number of batches removed."""
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - self._max_age_ms
        removed = 0
        while True:
            chunks, batches = await self._store.purge(cutoff, CHUNK)
            removed += batches
            if not chunks and not batches:
                break
            await asyncio.sleep(PAUSE_BETWEEN_CHUNKS)
        if removed:
            log.info("retention.purged", batches=removed)
        return removed
