"""BatchFeed: the batch changes a caller may see, as they happen (GET /api/v1/batches/events).

It is fed by the instance's LISTEN connection (the Hub), never by a poll: `batchgate_state` names a batch
whose state, app state or app id changed; `batchgate_queue` says batches were queued. A submit's INSERT
sends no NOTIFY of its own (schema.sql explains why), so on a queue notification each subscription looks
for batches created since the newest it has seen. After the listener reconnects (notifications may have
been missed) every subscription starts again with a fresh snapshot.

Each subscription coalesces what happened while its reader was busy, and reads it in one query, within
the caller's visibility (the list's: own batches and those of the caller's projects; all for admins).
Its events carry the contract's `Batch` models, so that the handler sees no store record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.batches.service import BatchService
from gateway.contract.batches import Batch, BatchState
from gateway.instance.listener import QUEUE, STATE, Hub
from gateway.security.auth import Principal
from gateway.store import BatchRecord, BatchRepository, ListFilter

ACTIVE = (BatchState.INITIALIZED, BatchState.PAUSED, BatchState.PENDING, BatchState.RUNNING)
SNAPSHOT_LIMIT = 1000
MAX_IDS = 100
KEEPALIVE_SECONDS = 15.0
# Batches created this long before the newest one seen are looked at again on a queue notification: the
# create time is the database's clock at insert, and a transaction may commit a little after a later one.
CREATED_SLACK_MS = 5_000
# A reader this far behind gets a fresh snapshot instead of every change it missed.
MAX_PENDING = 10_000
SENT_MEMORY = 20_000


@dataclass(frozen=True)
class FeedEvent:
    """`snapshot` (batches: the current view), `batch` (one changed batch) or `keepalive` (nothing)."""

    kind: str
    batches: list[Batch] = field(default_factory=list)


class _Subscription:
    def __init__(self, ids: frozenset[uuid.UUID] | None) -> None:
        self.ids = ids
        self.changed: set[uuid.UUID] = set()
        self.queued = False
        self.resync = False
        self.wake = asyncio.Event()

    def state_changed(self, batch_id: uuid.UUID) -> None:
        if self.ids is not None and batch_id not in self.ids:
            return
        if len(self.changed) >= MAX_PENDING:
            self.resync = True
        else:
            self.changed.add(batch_id)
        self.wake.set()

    def batches_queued(self) -> None:
        if self.ids is None:
            self.queued = True
            self.wake.set()

    def missed(self) -> None:
        self.resync = True
        self.wake.set()


def _signature(batch: BatchRecord) -> tuple[str, str | None, str | None]:
    return batch.state, batch.app_state, batch.app_id


class BatchFeed:
    def __init__(self, store: BatchRepository, service: BatchService, hub: Hub) -> None:
        self._store = store
        self._service = service
        self._subscriptions: set[_Subscription] = set()
        self._closed = False
        hub.on(STATE, self._on_state)
        hub.on(QUEUE, self._on_queue)

    def _on_state(self, payload: str | None) -> None:
        if payload is None:
            for sub in self._subscriptions:
                sub.missed()
            return
        try:
            batch_id = uuid.UUID(payload.split(" ", 1)[0])
        except ValueError:
            return
        for sub in self._subscriptions:
            sub.state_changed(batch_id)

    def _on_queue(self, payload: str | None) -> None:
        for sub in self._subscriptions:
            if payload is None:
                sub.missed()
            else:
                sub.batches_queued()

    def close(self) -> None:
        """The gateway is stopping: every follower ends, so that open streams do not hold the shutdown."""
        self._closed = True
        for sub in self._subscriptions:
            sub.wake.set()

    async def check(self, principal: Principal, ids: list[str]) -> frozenset[uuid.UUID] | None:
        """The batches a subscription names, each readable by the caller (404/403 otherwise); None: all."""
        if not ids:
            return None
        return frozenset([(await self._service.readable(principal, batch_id)).id for batch_id in ids])

    async def follow(self, principal: Principal, ids: frozenset[uuid.UUID] | None, *,
                     snapshot: bool = True) -> AsyncIterator[FeedEvent]:
        """A snapshot (the named batches, or the caller's active ones), then each change as it happens.
        Runs until the reader stops iterating."""
        sub = _Subscription(ids)
        self._subscriptions.add(sub)  # before the snapshot is read, so no change falls in between
        sent: dict[uuid.UUID, tuple[str, str | None, str | None]] = {}
        newest = int(time.time() * 1000)
        try:
            if snapshot:
                batches = await self._snapshot(principal, ids)
                sent.update((b.id, _signature(b)) for b in batches)
                newest = max([newest, *(b.create_time for b in batches)])
                yield FeedEvent("snapshot", [b.to_api() for b in batches])
            while not self._closed:
                if not (sub.changed or sub.queued or sub.resync):
                    sub.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sub.wake.wait(), KEEPALIVE_SECONDS)
                if self._closed:
                    return
                if sub.resync:
                    sub.resync, sub.queued = False, False
                    sub.changed.clear()
                    batches = await self._snapshot(principal, ids)
                    sent = {b.id: _signature(b) for b in batches}
                    yield FeedEvent("snapshot", [b.to_api() for b in batches])
                    continue
                changed, sub.changed = sub.changed, set()
                queued, sub.queued = sub.queued, False
                if not changed and not queued:
                    yield FeedEvent("keepalive")
                    continue
                found = await self._changed(principal, ids, changed) if changed else []
                if queued:
                    fresh = await self._queued(principal, newest)
                    newest = max([newest, *(b.create_time for b in fresh)])
                    found += [b for b in fresh if b.id not in changed]
                for batch in sorted(found, key=lambda b: (b.update_time, b.create_time)):
                    if sent.get(batch.id) == _signature(batch):
                        continue
                    sent[batch.id] = _signature(batch)
                    yield FeedEvent("batch", [batch.to_api()])
                while len(sent) > SENT_MEMORY:
                    del sent[next(iter(sent))]
        finally:
            self._subscriptions.discard(sub)

    async def _snapshot(self, principal: Principal, ids: frozenset[uuid.UUID] | None) -> list[BatchRecord]:
        if ids is not None:
            _, batches = await self._store.list_batches(ListFilter(ids=tuple(ids), size=len(ids)))
            return batches
        flt = await self._service.scoped(principal, ListFilter(states=ACTIVE, size=SNAPSHOT_LIMIT, desc=True))
        _, batches = await self._store.list_batches(flt)
        return batches

    async def _changed(self, principal: Principal, ids: frozenset[uuid.UUID] | None,
                       changed: set[uuid.UUID]) -> list[BatchRecord]:
        flt = ListFilter(ids=tuple(changed), size=len(changed))
        if ids is None:  # named batches were checked once, when the subscription began
            flt = await self._service.scoped(principal, flt)
        _, batches = await self._store.list_batches(flt)
        return batches

    async def _queued(self, principal: Principal, newest: int) -> list[BatchRecord]:
        flt = await self._service.scoped(principal, ListFilter(
            states=(BatchState.INITIALIZED,), create_time=max(0, newest - CREATED_SLACK_MS),
            size=SNAPSHOT_LIMIT))
        _, batches = await self._store.list_batches(flt)
        return batches
