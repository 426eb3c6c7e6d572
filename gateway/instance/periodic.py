"""A step run on a timer: the shape shared by the retention purge and the lease takeover sweep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.errors import Unavailable

log = structlog.get_logger("gateway.periodic")


class Periodic:
    """Runs `step` every `every` seconds until stopped. A database outage is logged and waited out."""

    def __init__(self, name: str, every: float, step: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._every = every
        self._step = step
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Unavailable:
                log.warning(f"{self._name}.db_unavailable")
            except Exception:
                log.exception(f"{self._name}.failed")
            await asyncio.sleep(self._every)  # time is what these steps are about: a timer, not a poll
