"""The instance's lease: renewed on a timer, so other instances can tell this one is alive."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.errors import Unavailable
from gateway.store.instances import InstanceRepository

log = structlog.get_logger("gateway.heartbeat")


class Heartbeat:
    def __init__(self, instances: InstanceRepository, instance: str, address: str, *, every: float,
                 lease: float) -> None:
        self._instances = instances
        self.instance = instance
        self._address = address
        self._every = every
        self._lease_ms = int(lease * 1000)
        self._task: asyncio.Task[None] | None = None
        self.healthy = False

    async def beat(self) -> None:
        await self._instances.renew_lease(self.instance, self._address, self._lease_ms)
        self.healthy = True

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)  # a timer is what a lease renewal is
            try:
                await self.beat()
            except Unavailable:
                self.healthy = False
                log.warning("heartbeat.db_unavailable")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Unavailable):
            await self._instances.set_draining(self.instance)
