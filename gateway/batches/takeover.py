"""Takeover: batches of an instance whose lease ran out move to a live instance, which re-attaches.

Exactly one live instance wins each dead instance: the dead instance's row is deleted under
`FOR UPDATE SKIP LOCKED`, and its batches move in the same transaction.
"""

from __future__ import annotations

import structlog

from gateway.batches.logs import LogStore
from gateway.batches.supervisor import Supervisor
from gateway.instance.metrics import Metrics
from gateway.instance.periodic import Periodic
from gateway.store import BatchRecord, Store

log = structlog.get_logger("gateway.takeover")


class Takeover:
    def __init__(
        self, store: Store, logs: LogStore, supervisor: Supervisor, *, every: float, metrics: Metrics | None = None
    ) -> None:
        self._metrics = metrics or Metrics()
        self._store = store
        self._logs = logs
        self._supervisor = supervisor
        self.taken_over = 0
        # Leases are time: checking them is a timer, at the heartbeat's pace.
        self._loop = Periodic("takeover", every, self.sweep)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> int:
        """Take over every expired instance (and orphaned batches) now; returns how many batches moved."""
        moved = 0
        me = self._supervisor.instance
        while True:
            dead, batches = await self._store.take_over_dead(me)
            if dead is None:
                break
            log.warning("instance.lease_expired", dead_instance=dead, batches=len(batches))
            self._metrics.took_over(len(batches))
            await self._adopt(batches, dead)
            moved += len(batches)
        orphans = await self._store.take_over_orphans(me)
        if orphans:
            log.warning("instance.orphans", batches=len(orphans))
            await self._adopt(orphans, "unknown")
            moved += len(orphans)
        self.taken_over += moved
        return moved

    async def _adopt(self, batches: list[BatchRecord], previous: str) -> None:
        for batch in batches:
            await self._logs.note(batch.id, f"taken over by {self._supervisor.instance} from {previous}")
        self._supervisor.adopt(batches, previous)
