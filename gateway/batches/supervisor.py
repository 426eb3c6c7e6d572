"""Supervisor: launches the batches this instance claimed and turns engine events into state changes.

It is the only writer of a batch's state while the batch is active, and it writes only batches this
instance owns (every update is guarded by `instance = me`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import structlog

from engines.base import (
    LAUNCH_MARK,
    AppInfo,
    Details,
    EngineError,
    Event,
    Exited,
    Handle,
    LaunchSpec,
    LogLines,
    Note,
    NotSupported,
    Pausable,
    Run,
)
from engines.registry import EngineRegistry
from engines.runner import PIDS
from gateway.batches.logs import LogStore
from gateway.batches.states import terminal_state
from gateway.batches.uploads import INFO_RESOURCE_FILE, UPLOAD_DIR, conf_with_extra_resources, stored_files
from gateway.contract.batches import AppState, BatchState
from gateway.errors import GatewayError, Unavailable
from gateway.instance.metrics import Metrics
from gateway.projects.service import ARTIFACT_PREFIX, ProjectService
from gateway.store import BatchRecord, BatchRepository
from gateway.store.control import ControlRepository

log = structlog.get_logger("gateway.supervisor")
T = TypeVar("T")

RETRY_MAX_SECONDS = 5.0


def _launched_in(workdir: Path) -> bool:
    return (workdir / PIDS).exists() or (workdir / LAUNCH_MARK).exists()


class Supervisor:
    def __init__(
        self,
        store: BatchRepository,
        controls: ControlRepository,
        logs: LogStore,
        engines: EngineRegistry,
        instance: str,
        data_dir: Path,
        *,
        launch_concurrency: int = 8,
        recover_concurrency: int = 32,
        metrics: Metrics | None = None,
        projects: ProjectService | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._projects = projects
        self._store = store
        self._controls = controls
        self._logs = logs
        self._engines = engines
        self.instance = instance
        self._batches_dir = data_dir / "batches"
        self._runs: dict[uuid.UUID, Run] = {}
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._killing: set[uuid.UUID] = set()
        self._launch_slots = asyncio.Semaphore(launch_concurrency)
        # Thousands of batches may come back at once after a restart or a takeover.
        self._recover_slots = asyncio.Semaphore(recover_concurrency)
        self._closing = False
        self._side_tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return len(self._tasks)

    def workdir(self, batch_id: uuid.UUID) -> Path:
        return self._batches_dir / str(batch_id)

    def spec(self, batch: BatchRecord, resource: str | None = None) -> LaunchSpec:
        return LaunchSpec(
            batch_id=str(batch.id), batch_type=batch.batch_type, user=batch.batch_user,
            real_user=batch.real_user, name=batch.name, resource=resource or batch.resource,
            class_name=batch.class_name, args=batch.args, workdir=self.workdir(batch.id),
            conf=conf_with_extra_resources(batch.conf, batch.batch_info, self.workdir(batch.id)),
        )

    async def _retry(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a database write until it succeeds: an acknowledged batch's events are never dropped."""
        delay = 0.1
        while True:
            try:
                return await op()
            except Unavailable:
                if self._closing:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)

    # --- starting work -------------------------------------------------------------------

    def start(self, batch: BatchRecord) -> None:
        """Take over a claimed batch: launch it, or re-attach if it was launched before."""
        if batch.id in self._tasks:
            return
        if batch.kill_requested:
            self._killing.add(batch.id)
        task = asyncio.create_task(self._own(batch), name=f"batch-{batch.id}")
        self._tasks[batch.id] = task
        task.add_done_callback(partial(self._forget_task, batch.id))

    def _forget_task(self, batch_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(batch_id, None)
        self._runs.pop(batch_id, None)
        self._killing.discard(batch_id)

    async def _own(self, batch: BatchRecord) -> None:
        blog = log.bind(batch_id=str(batch.id), user=batch.batch_user, engine=batch.batch_type)
        try:
            run = await self._attach_or_launch(batch, blog)
            if run is None:
                return
            self._runs[batch.id] = run
            if batch.id in self._killing:
                await run.kill()
            elif batch.control:
                self.control(batch.id, batch.control)
            await self._follow(batch, run, blog)
        except asyncio.CancelledError:
            raise
        except Unavailable:
            blog.warning("batch.detached_db_unavailable")
        except Exception:
            blog.exception("batch.supervise_failed")
            with contextlib.suppress(Exception):
                await self._finish(batch.id, AppState.FAILED, "internal error while supervising the batch")

    async def _attach_or_launch(self, batch: BatchRecord, blog: Any) -> Run | None:
        engine = self._engines.get(batch.batch_type)
        if engine is None:
            await self._finish(batch.id, AppState.FAILED, f"batch type {batch.batch_type} is not enabled")
            return None
        handle = Handle.parse(batch.handle)  # the engine parses it into its own model in recover()
        workdir = Path(handle.workdir or self.workdir(batch.id))
        launched_before = handle.launched or await asyncio.to_thread(_launched_in, workdir)
        if launched_before:
            handle = handle.model_copy(update={"workdir": str(workdir)})
            async with self._recover_slots:
                run = await engine.recover(self.spec(batch), handle, batch.log_offset)
            if run is None:
                await self._retry(partial(self._logs.note, batch.id, "lost: the application could not be found"))
                await self._finish(batch.id, AppState.FAILED, "application lost: it could not be re-attached")
                blog.warning("batch.lost")
                return None
            await self._retry(partial(self._logs.note, batch.id, f"re-attached by {self.instance}"))
            blog.info("batch.recovered")
            return run

        async with self._launch_slots:
            # Write down where the launch happens before it happens: a crash between the launch and
            # set_launched is then recovered by attaching, never by launching a second time.
            intent_handle = Handle(workdir=str(self.workdir(batch.id)))
            intent = await self._retry(partial(
                self._store.set_launching, batch.id, self.instance, intent_handle.stored(),
                self._logs.note_line(f"claimed by {self.instance}; launching {batch.batch_type}")))
            if intent is None:
                blog.info("batch.lost_ownership_before_launch")
                return None
            try:
                resource = await self._retry(partial(self._materialize, batch))
            except GatewayError as exc:  # an artifact that is gone or broken: the batch cannot start
                await self._finish(batch.id, AppState.FAILED, f"launch failed: {exc.message}")
                return None
            spec = self.spec(batch, resource)
            try:
                run = await engine.submit(spec)
            except EngineError as exc:
                self._metrics.launch_failed(batch.batch_type)
                await self._finish(batch.id, AppState.FAILED, f"launch failed: {exc}")
                blog.info("batch.launch_failed", error=str(exc))
                return None
        record = await self._retry(partial(self._store.set_launched, batch.id, self.instance, run.handle.stored()))
        if record is None:
            # Canceled or taken over between claim and launch: this instance must not keep it running.
            blog.warning("batch.lost_ownership_at_launch")
            await run.kill()
            return None
        if record.kill_requested:
            self._killing.add(batch.id)
        blog.info("batch.launched")
        return run

    async def _materialize(self, batch: BatchRecord) -> str | None:
        """Write the uploaded files or the artifact resource into the working dir; returns the resource's
        path if it is one of them, or None."""
        artifact: str | None = None
        if batch.resource.startswith(ARTIFACT_PREFIX) and batch.project and self._projects is not None:
            pinned = batch.batch_info.get("artifact", {}).get("version", 0)
            artifact = await self._projects.materialize(batch.project, batch.resource, int(pinned),
                                                        self.workdir(batch.id))
        names = stored_files(batch.batch_info)
        if not names:
            return artifact
        upload_dir = self.workdir(batch.id) / UPLOAD_DIR
        files = [(upload_dir / name, await self._store.file_chunks(batch.id, name)) for name in names]

        def write() -> None:
            upload_dir.mkdir(parents=True, exist_ok=True)
            for target, chunks in files:
                with open(target, "wb") as f:
                    for chunk in chunks:
                        f.write(chunk)
                target.chmod(0o700)

        await asyncio.to_thread(write)
        resource = batch.batch_info.get(INFO_RESOURCE_FILE)
        return str(upload_dir / str(resource)) if resource else artifact

    # --- following -----------------------------------------------------------------------

    async def _follow(self, batch: BatchRecord, run: Run, blog: Any) -> None:
        # aclosing: the engine's cleanup (sessions, watches) runs as soon as the events end.
        # Every engine's events() is an async generator; the Protocol only promises an iterator.
        async with contextlib.aclosing(cast(AsyncGenerator[Event, None], run.events())) as events:
            await self._consume(batch, run, events, blog)

    async def _consume(self, batch: BatchRecord, run: Run, events: AsyncIterator[Event], blog: Any) -> None:
        started = batch.state is not BatchState.PENDING  # for the metrics: count PENDING -> RUNNING once
        async for event in events:
            if isinstance(event, LogLines):
                owned = await self._retry(
                    partial(self._logs.append, batch.id, event.lines, event.offset, self.instance))
                if not owned:
                    # Another instance took the batch over (this one missed its lease): let go.
                    blog.warning("batch.ownership_lost")
                    await run.detach()
                    return
            elif isinstance(event, Note):
                await self._retry(partial(self._logs.note, batch.id, event.text))
            elif isinstance(event, AppInfo):
                record = await self._retry(partial(
                    self._store.update_app, batch.id, self.instance, app_id=event.app_id, app_url=event.app_url,
                    app_state=event.app_state, running=event.running, diagnostic=event.diagnostic,
                    handle=event.handle.stored() if event.handle is not None else None,
                ))
                if event.running and not started and record is not None and record.state is BatchState.RUNNING:
                    started = True
                    self._metrics.running(record)
                if event.running:
                    blog.info("batch.running", app_id=event.app_id)
            elif isinstance(event, Details):
                await self._retry(partial(
                    self._controls.save_details, batch.id, self.instance,
                    event.stored(),
                ))
            elif isinstance(event, Exited):
                state = await self._finish(batch.id, event.app_state, event.diagnostic, event.info.stored())
                blog.info("batch.ended", state=state, diagnostic=event.diagnostic)
                return

    async def _finish(
        self, batch_id: uuid.UUID, app_state: str, diagnostic: str | None, info: dict[str, Any] | None = None
    ) -> BatchState:
        state, final_app_state = terminal_state(app_state, batch_id in self._killing)
        text = f"state {state}" + (f": {diagnostic}" if diagnostic else "")
        record = await self._retry(partial(
            self._store.finish_batch, batch_id, self.instance, state=state, app_state=final_app_state,
            diagnostic=diagnostic, info=info, note=self._logs.note_line(text),
        ))
        self._metrics.ended(record)
        return state

    # --- control -------------------------------------------------------------------------

    def kill(self, batch_id: uuid.UUID) -> None:
        """A kill was requested (by any instance) for a batch this instance owns."""
        self._killing.add(batch_id)
        run = self._runs.get(batch_id)
        if run is not None:
            task = asyncio.create_task(run.kill(), name=f"kill-{batch_id}")
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def control(self, batch_id: uuid.UUID, action: str) -> None:
        """A pause or resume was requested (by any instance) for a batch this instance owns."""
        if batch_id not in self._runs:
            return  # not attached yet: _own applies the pending request once it is
        task = asyncio.create_task(self._control(batch_id, action), name=f"{action.lower()}-{batch_id}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _control(self, batch_id: uuid.UUID, action: str) -> None:
        run = self._runs.get(batch_id)
        if run is None:
            return
        blog = log.bind(batch_id=str(batch_id), action=action)
        try:
            if not isinstance(run, Pausable):
                raise NotSupported("this engine cannot pause a running application")
            facts = await (run.pause() if action == "PAUSE" else run.resume())
        except NotSupported as exc:
            blog.info("batch.control_refused", reason=str(exc))
            await self._retry(partial(self._controls.clear_control, batch_id, self.instance,
                                      {"controlError": str(exc)}))
            return
        except Exception as exc:
            blog.exception("batch.control_failed")
            error = {"controlError": f"{action.lower()} failed: {exc}"}
            await self._retry(partial(self._controls.clear_control, batch_id, self.instance, error))
            return
        info = {**facts.stored(), "controlError": None}
        setter = self._controls.set_paused if action == "PAUSE" else self._controls.set_resumed
        await self._retry(partial(setter, batch_id, self.instance, info))
        await self._retry(partial(self._logs.note, batch_id, "paused" if action == "PAUSE" else "resumed"))
        blog.info("batch.paused" if action == "PAUSE" else "batch.resumed")

    def owns(self, batch_id: uuid.UUID) -> bool:
        return batch_id in self._tasks

    async def recover_owned(self) -> int:
        """Re-attach to (or launch) every active batch this instance owned before it restarted."""
        count = 0
        async for page in self._store.owned_active(self.instance):
            for batch in page:
                self.start(batch)
                count += 1
        return count

    def adopt(self, batches: list[BatchRecord], previous_owner: str) -> None:
        """Batches taken over from a dead instance: re-attach through the engines' recover()."""
        for batch in batches:
            log.info("batch.taken_over", batch_id=str(batch.id), previous_owner=previous_owner)
            self.start(batch)

    async def detach_all(self) -> None:
        """Stop watching every application and leave them running, for the next start to re-attach."""
        self._closing = True
        for run in list(self._runs.values()):
            with contextlib.suppress(Exception):
                await run.detach()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
