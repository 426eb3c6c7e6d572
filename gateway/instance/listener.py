"""LISTEN/NOTIFY: one dedicated connection per instance, fanned out to in-process waiters."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import structlog

log = structlog.get_logger("gateway.listener")

QUEUE = "batchgate_queue"
STATE = "batchgate_state"
KILL = "batchgate_kill"
LOG = "batchgate_log"
CONTROL = "batchgate_control"
RUN = "batchgate_run"
RUN_BATCH = "batchgate_run_batch"
SCHEDULE = "batchgate_schedule"
DEADLINE = "batchgate_deadline"
CHANNELS = (QUEUE, STATE, KILL, LOG, CONTROL, RUN, RUN_BATCH, SCHEDULE, DEADLINE)

Handler = Callable[[str | None], None]


class Hub:
    """Routes notifications to handlers (by channel) and to waiters (by channel and key).

    After a reconnect, notifications may have been missed, so every handler is called with None
    and every waiter is woken: each of them re-reads the database.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)

    def on(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    @contextlib.contextmanager
    def subscribe(self, channel: str, key: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters[(channel, key)].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get((channel, key))
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[(channel, key)]

    def dispatch(self, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            handler(payload)
        key = payload.split(" ", 1)[0]
        for event in self._waiters.get((channel, key), ()):
            event.set()

    def resync(self) -> None:
        for handlers in list(self._handlers.values()):
            for handler in handlers:
                handler(None)
        for waiters in list(self._waiters.values()):
            for event in waiters:
                event.set()


class Listener:
    """Keeps a LISTEN connection open, reconnecting with backoff when Postgres goes away."""

    def __init__(self, dsn: str, hub: Hub) -> None:
        self._dsn = dsn
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listener")
        # The first connection is made before serving, so no early notification is missed.
        await asyncio.wait_for(self.connected.wait(), timeout=30)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _notify(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self._hub.dispatch(channel, payload)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while True:
            lost = asyncio.Event()
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=10)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in CHANNELS:
                    await conn.add_listener(channel, self._notify)
                self.connected.set()
                backoff = 0.1
                if not first:
                    log.info("listener.reconnected")
                    self._hub.resync()
                first = False
                await lost.wait()
                log.warning("listener.lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listener.connect_failed", error=str(exc), retry_in=backoff)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


class QueueBell:
    """Wakes the claimers after batches were queued: this instance's at once, the others through one
    NOTIFY per short interval, however many batches were queued in it."""

    INTERVAL = 0.01

    def __init__(self, ring: Callable[[], Awaitable[None]], wake_local: Callable[[], None]) -> None:
        self._ring = ring
        self._wake_local = wake_local
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def ring(self) -> None:
        self._wake_local()
        self._pending.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue-bell")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._pending.wait()
            self._pending.clear()
            try:
                await self._ring()
            except Exception as exc:  # the database is away: the others' safety net covers it
                log.warning("queue_bell.failed", error=str(exc))
            await asyncio.sleep(self.INTERVAL)  # coalesce a burst of submits into one NOTIFY
