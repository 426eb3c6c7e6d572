"""Scheduler: claims queued batches for this instance, within limits that hold across instances.

It sleeps until a notification says there may be work (a new batch, or freed capacity); the long
timeout is only a safety net for a missed notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import structlog

from gateway.batches.logs import LogStore
from gateway.batches.supervisor import Supervisor
from gateway.errors import Unavailable
from gateway.instance.metrics import Metrics
from gateway.store.claims import ActiveCounts, ClaimCandidate, ClaimRepository

log = structlog.get_logger("gateway.scheduler")

SAFETY_NET_SECONDS = 10.0
SCAN = 200
MAX_WAIT_NOTES = 100


@dataclass(frozen=True)
class Limits:
    """Maximum active (PENDING + RUNNING) batches; 0 means no limit."""

    global_max: int = 0
    per_user: int = 0
    per_type: dict[str, int] = field(default_factory=dict)


def choose(
    candidates: list[ClaimCandidate], counts: ActiveCounts, limits: Limits, room: int
) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
    """Pick, in claim order, the candidates that fit every limit. Returns (picked, reason per waiting)."""
    picked: list[uuid.UUID] = []
    waiting: dict[uuid.UUID, str] = {}
    total = counts.total
    by_user = dict(counts.by_user)
    by_type = dict(counts.by_type)
    for cand in candidates:
        if limits.global_max and total >= limits.global_max:
            waiting[cand.id] = f"waiting: the global limit of {limits.global_max} running batches is reached"
            continue
        if limits.per_user and by_user.get(cand.user, 0) >= limits.per_user:
            waiting[cand.id] = (
                f"waiting: user {cand.user} has {limits.per_user} running batches, the per-user limit"
            )
            continue
        type_limit = limits.per_type.get(cand.batch_type, 0)
        if type_limit and by_type.get(cand.batch_type, 0) >= type_limit:
            waiting[cand.id] = (
                f"waiting: {type_limit} {cand.batch_type} batches are running, the limit for that type"
            )
            continue
        if len(picked) >= room:
            break  # this instance is full; other instances may take the rest
        picked.append(cand.id)
        total += 1
        by_user[cand.user] = by_user.get(cand.user, 0) + 1
        by_type[cand.batch_type] = by_type.get(cand.batch_type, 0) + 1
    return picked, waiting


class Scheduler:
    def __init__(
        self,
        claims: ClaimRepository,
        logs: LogStore,
        supervisor: Supervisor,
        limits: Limits,
        *,
        capacity: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._claims = claims
        self._logs = logs
        self._supervisor = supervisor
        self._limits = limits
        self._capacity = capacity
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self, _payload: str | None = None) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop claiming. Batches already claimed stay with the supervisor."""
        self._stop.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                while await self.claim_once():
                    pass
            except Unavailable:
                log.warning("scheduler.db_unavailable")
                await asyncio.sleep(1.0)
                self._wake.set()
            except Exception:
                log.exception("scheduler.claim_failed")
                await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SAFETY_NET_SECONDS)

    async def claim_once(self) -> int:
        """Claim what fits now and hand it to the supervisor; returns how many were claimed."""
        room = self._capacity - self._supervisor.active
        if room <= 0:
            return 0
        async with self._claims.session() as session:
            candidates = await session.candidates(SCAN)
            if not candidates:
                return 0
            counts = await session.active_counts()
            picked, waiting = choose(candidates, counts, self._limits, room)
            claimed = await session.claim(picked, self._supervisor.instance)
            noted: list[tuple[uuid.UUID, str]] = []
            for reason in set(waiting.values()):
                ids = [i for i, r in waiting.items() if r == reason]
                for changed in await session.set_wait_reason(ids, reason):
                    noted.append((changed, reason))
        for batch in claimed:
            log.info("batch.claimed", batch_id=str(batch.id), user=batch.batch_user)
            self._metrics.claimed(batch)
            self._supervisor.start(batch)
        for batch_id, reason in noted[:MAX_WAIT_NOTES]:
            await self._logs.note(batch_id, reason)
        return len(claimed)
