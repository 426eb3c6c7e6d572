"""Kill and control notices (NOTIFY batchgate_kill, batchgate_control) for the batches this instance
owns. After a reconnect (payload None) the owner re-reads what it may have missed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from gateway.batches.supervisor import Supervisor
from gateway.store import BatchRepository
from gateway.store.control import ControlRepository


def kill_handler(supervisor: Supervisor, store: BatchRepository) -> Callable[[str | None], None]:
    pending: set[asyncio.Task[None]] = set()

    def handle(payload: str | None) -> None:
        if payload is None:
            task = asyncio.create_task(_resync_kills(supervisor, store))
            pending.add(task)
            task.add_done_callback(pending.discard)
            return
        owner, _, batch_id = payload.partition(" ")
        if owner == supervisor.instance:
            supervisor.kill(uuid.UUID(batch_id))

    return handle


def control_handler(supervisor: Supervisor, controls: ControlRepository) -> Callable[[str | None], None]:
    pending: set[asyncio.Task[None]] = set()

    async def resync() -> None:
        for batch_id, action in await controls.pending_controls(supervisor.instance):
            supervisor.control(batch_id, action)

    def handle(payload: str | None) -> None:
        if payload is None:
            task = asyncio.create_task(resync())
            pending.add(task)
            task.add_done_callback(pending.discard)
            return
        owner, batch_id, action = payload.split(" ", 2)
        if owner == supervisor.instance:
            supervisor.control(uuid.UUID(batch_id), action)

    return handle


async def _resync_kills(supervisor: Supervisor, store: BatchRepository) -> None:
    for batch_id in await store.kill_requested_owned(supervisor.instance):
        supervisor.kill(batch_id)
