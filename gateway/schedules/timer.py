"""DueLoop: sleep until the earliest due time in the database, wake early on NOTIFY, run what is due.

One query finds the next due time; there is no per-second scan. A long timeout is only the safety net
(a missed notification, a clock step). Housekeeping (taking over what dead instances left) runs at most
every `housekeeping` seconds, on a wake-up that happens anyway or on the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from gateway.errors import Unavailable

log = structlog.get_logger("gateway.schedules")


def now_ms() -> int:
    return int(time.time() * 1000)


class DueLoop:
    def __init__(self, name: str, next_due: Callable[[], Awaitable[int | None]],
                 run_due: Callable[[int], Awaitable[bool]], *, housekeeping: Callable[[], Awaitable[None]],
                 housekeeping_seconds: float, safety_seconds: float = 30.0,
                 clock: Callable[[], int] = now_ms) -> None:
        self._name = name
        self._next_due = next_due
        self._run_due = run_due  # returns True when another instance held some due rows
        self._housekeeping = housekeeping
        self._every = housekeeping_seconds
        self._safety = safety_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_housekeeping = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before reading: a change committed after this wakes the wait below
            try:
                if time.monotonic() - self._last_housekeeping >= self._every:
                    self._last_housekeeping = time.monotonic()
                    await self._housekeeping()
                due = await self._next_due()
                now = self._clock()
                if due is not None and due <= now:
                    if await self._run_due(now):
                        await self._wait(1.0)  # the holder's commit notifies us
                    continue
                timeout = self._safety if due is None else min((due - now) / 1000, self._safety)
                timeout = min(timeout, max(self._every - (time.monotonic() - self._last_housekeeping), 0.05))
            except Unavailable:
                log.warning(f"{self._name}.db_unavailable")
                timeout = 1.0
            except Exception:
                log.exception(f"{self._name}.failed")
                timeout = 1.0
            await self._wait(timeout)
