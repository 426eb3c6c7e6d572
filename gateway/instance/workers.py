"""`batchgate serve --workers N`: N gateway processes sharing one port through SO_REUSEPORT.

Each worker is a whole instance (API, scheduler, supervisor) on the same database, which the gateway
supports anyway (claims, limits and leases live in Postgres). The parent only starts the embedded
Postgres if there is one, starts the workers, restarts one that dies (with the same instance id, so it
re-attaches its own batches at once), and stops them all on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

import structlog

from gateway.instance.embedded import EmbeddedPostgres
from gateway.settings import Settings

log = structlog.get_logger("gateway.workers")

RESTART_DELAY_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 30.0
# A worker that dies sooner than this after its start is crashing, not crashed: wait twice as long before
# the next start, and give up after CRASH_LIMIT such starts in a row (a taken port, a bad setting).
STEADY_SECONDS = 30.0
CRASH_LIMIT = 5


def worker_environment(settings: Settings, given: dict[str, str], database_url: str, index: int) -> dict[str, str]:
    """The environment of worker `index`: the parent's, its flags as BATCHGATE_* and the shared database."""
    base = settings.instance.instance_id or f"{socket.gethostname()}:{settings.instance.port}"
    env = dict(os.environ)
    env.update({f"BATCHGATE_{name.upper()}": value for name, value in given.items()})
    env.update({
        "BATCHGATE_DATABASE_URL": database_url,
        "BATCHGATE_INSTANCE_ID": f"{base}/w{index}",
        "BATCHGATE_WORKERS": "1",
        "BATCHGATE_REUSE_PORT": "true",
        "BATCHGATE_PARENT_PID": str(os.getpid()),
    })
    return env


def stop_with_parent(loop: asyncio.AbstractEventLoop, parent: int) -> None:
    """SIGTERM this worker when its parent is gone, even by kill -9: an orphan would keep serving the port
    under an instance id that the restarted parent hands to a new worker as well."""
    if os.getppid() != parent:  # the parent died before this worker got here
        os.kill(os.getpid(), signal.SIGTERM)
        return
    fd = os.pidfd_open(parent)

    def gone() -> None:
        # Once: a pidfd stays readable after its process ended.
        loop.remove_reader(fd)
        os.close(fd)
        log.warning("workers.parent_gone", parent=parent)
        os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(fd, gone)


class Fleet:
    def __init__(self, settings: Settings, given: dict[str, str]) -> None:
        self._settings = settings
        self._given = given
        self._stopping = asyncio.Event()
        self._failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        embedded: EmbeddedPostgres | None = None
        database_url = self._settings.database.database_url
        if database_url is None:
            embedded = EmbeddedPostgres(self._settings.instance.data_dir)
            database_url = await embedded.start()
        try:
            # Migrate (or refuse) once here, so that a schema refusal is one clear message, not a crash
            # loop of every worker; each worker still checks under the lock and registers itself.
            from gateway.store.migrate import Migrator

            await Migrator(database_url).upgrade(migrate=self._settings.database.migrate)
            workers = [
                asyncio.create_task(self._keep(i, database_url), name=f"worker-{i}")
                for i in range(self._settings.instance.workers)
            ]
            log.info("workers.started", workers=len(workers), port=self._settings.instance.port)
            await self._stopping.wait()
            await asyncio.gather(*workers)
        finally:
            if embedded is not None:
                await embedded.stop()
        log.info("workers.stopped")
        return 1 if self._failed else 0

    async def _keep(self, index: int, database_url: str) -> None:
        """Run worker `index` until the fleet stops, starting it again whenever it dies."""
        env = worker_environment(self._settings, self._given, database_url, index)
        loop = asyncio.get_running_loop()
        delay, crashes = RESTART_DELAY_SECONDS, 0
        while not self._stopping.is_set():
            started = loop.time()
            process = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway", "serve", env=env)
            stopping = asyncio.ensure_future(self._stopping.wait())
            exited = asyncio.ensure_future(process.wait())
            await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self._stopping.is_set():
                # SIGTERM lets the worker detach from its applications cleanly (they keep running).
                if not exited.done():
                    with contextlib.suppress(ProcessLookupError):
                        process.terminate()
                try:
                    await asyncio.wait_for(exited, STOP_TIMEOUT_SECONDS)
                except TimeoutError:
                    process.kill()
                    await process.wait()
                return
            if loop.time() - started >= STEADY_SECONDS:
                crashes, delay = 0, RESTART_DELAY_SECONDS
            crashes += 1
            if crashes >= CRASH_LIMIT:
                log.error("workers.giving_up", worker=index, code=exited.result(), starts=crashes)
                self._failed = True
                self._stopping.set()
                return
            log.warning("workers.worker_exited", worker=index, code=exited.result(), restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay *= 2
