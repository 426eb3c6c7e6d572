"""Takeover: batches of an instance whose lease ran out move to a live instance, which re-attaches.

Exactly one live instance wins each dead instance: the dead instance's row is deleted under
`FOR UPDATE SKIP LOCKED`, and its batches move in the same transaction.
"""

from __future__ import annotations

import time

import structlog

from gateway.batches.logs import LogStore
from gateway.batches.supervisor import Supervisor
from gateway.contract.batches import ReassignBatchResponse
from gateway.errors import Conflict
from gateway.instance.metrics import Metrics
from gateway.instance.periodic import Periodic
from gateway.security.audit import AuditService
from gateway.security.auth import Principal
from gateway.security.policy import Policy
from gateway.store import BatchRecord
from gateway.store.instances import InstanceRepository

log = structlog.get_logger("gateway.takeover")


class Takeover:
    def __init__(
        self, instances: InstanceRepository, logs: LogStore, supervisor: Supervisor, policy: Policy,
        audit: AuditService, *, every: float, metrics: Metrics | None = None,
    ) -> None:
        self._audit = audit
        self._metrics = metrics or Metrics()
        self._policy = policy
        self._instances = instances
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
            dead, batches = await self._instances.take_over_dead(me)
            if dead is None:
                break
            log.warning("instance.lease_expired", dead_instance=dead, batches=len(batches))
            self._metrics.took_over(len(batches))
            await self._adopt(batches, dead)
            moved += len(batches)
        orphans = await self._instances.take_over_orphans(me)
        if orphans:
            log.warning("instance.orphans", batches=len(orphans))
            await self._adopt(orphans, "unknown")
            moved += len(orphans)
        self.taken_over += moved
        return moved

    async def reassign(self, who: Principal, dead: str) -> ReassignBatchResponse:
        """Kyuubi's manual door (POST /batches/reassign): an admin moves a dead instance's batches here now,
        instead of waiting for its lease to run out. The same move as the sweep's, for one named instance."""
        me = self._supervisor.instance
        self._policy.check_admin(who, "reassign batches")
        if dead == me:
            raise Conflict(f"kyuubiInstance: {dead} is this instance; ask another instance to take its batches")
        lease_until, batches = await self._instances.reassign(dead, me)
        if lease_until is not None:
            left = max(0.0, (lease_until - time.time() * 1000) / 1000)
            raise Conflict(f"kyuubiInstance: {dead} is alive (its lease runs {left:.0f} s more); "
                           "only a dead instance's batches can be reassigned")
        await self._audit.record(who.name, "reassign", dead, source_ip=who.source_ip,
                                 detail={"newInstance": me, "batches": len(batches)})
        log.warning("instance.reassigned", dead_instance=dead, batches=len(batches), user=who.name)
        self._metrics.took_over(len(batches))
        await self._adopt(batches, dead, f"reassigned by {who.name} to {me} from {dead}")
        self.taken_over += len(batches)
        return ReassignBatchResponse(batch_ids=[str(b.id) for b in batches], original_kyuubi_instance=dead,
                                     new_kyuubi_instance=me)

    async def _adopt(self, batches: list[BatchRecord], previous: str, note: str | None = None) -> None:
        for batch in batches:
            await self._logs.note(batch.id, note or f"taken over by {self._supervisor.instance} from {previous}")
        self._supervisor.adopt(batches, previous)
