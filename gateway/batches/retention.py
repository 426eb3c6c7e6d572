"""Retention: terminal batches older than the configured age are purged, a small chunk at a time."""

from __future__ import annotations

import asyncio
import time

import structlog

from gateway.instance.periodic import Periodic
from gateway.store import BatchRepository
from gateway.store.logs import LogRepository

log = structlog.get_logger("gateway.retention")

CHUNK = 200
PAUSE_BETWEEN_CHUNKS = 0.05  # let other work use the pool between two deletes


class Retention:
    def __init__(self, batches: BatchRepository, logs: LogRepository, *, days: float, every: float) -> None:
        self._batches = batches
        self._logs = logs
        self._max_age_ms = int(days * 86_400_000)
        self._loop = Periodic("retention", every, self.purge_once)

    def start(self) -> None:
        if self._max_age_ms > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def purge_once(self, now_ms: int | None = None) -> int:
        """Purge everything due now, chunk by chunk; returns the number of batches removed."""
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - self._max_age_ms
        removed = 0
        while True:
            # The logs first, in small deletes, so that purging a batch with a huge log is never one long
            # statement; then the batches (their files go by cascade).
            chunks = await self._logs.purge(cutoff, CHUNK * 10)
            batches = 0 if chunks else await self._batches.purge_terminal(cutoff, CHUNK)
            removed += batches
            if not chunks and not batches:
                break
            await asyncio.sleep(PAUSE_BETWEEN_CHUNKS)
        if removed:
            log.info("retention.purged", batches=removed)
        return removed
