"""The state of one Flink run that its parts share: the launcher follower (engines/flink_launcher.py), the
job watcher (engines/flink_watch.py) and the savepoint control (engines/flink_savepoint.py), and the
small things they all do: wait (waking early on a kill, a pause or a resume), note, cancel, end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from engines.base import AppInfo, Details, Event, Exited, LaunchSpec, Note
from engines.flink_cli import LOCAL, OutputScanner, Target
from engines.flink_rest import FlinkRest, FlinkRestError, detail_counters, job_url, vertex_steps
from engines.flink_state import FlinkExit, FlinkFacts, FlinkHandle, FlinkInfo, Phase
from engines.flink_yarn import FlinkYarn
from engines.process import ProcessRun
from engines.process_handle import ProcessExit, ProcessHandle
from engines.yarn import RmUnavailable, YarnApp

if TYPE_CHECKING:
    from engines.flink import FlinkEngine

log = structlog.get_logger("engines.flink")

DETAILS_INTERVAL = 5.0  # at most one Details snapshot per this many seconds while a job runs (and its end)
HANDLE_SAVE_SECONDS = 15.0  # how long a pause or resume waits for its handle to be in the database


class ResumeFailed(Exception):
    """`flink run -s <savepoint>` did not submit a job; the batch stays paused."""


@dataclass
class JobStates:
    """What the batch has seen of each Flink job: its last state, its last failure and its diagnostic."""

    states: dict[str, str] = field(default_factory=dict)
    failures: dict[str, int | None] = field(default_factory=dict)
    diagnostics: dict[str, str] = field(default_factory=dict)


class VertexDetails:
    """The vertex steps of every job seen, handed out as Details at most every DETAILS_INTERVAL seconds."""

    def __init__(self) -> None:
        self._steps: dict[str, list[dict[str, Any]]] = {}
        self._sent_at = 0.0
        self._sent: list[dict[str, Any]] | None = None
        self._final = False

    def record(self, job_id: str, job: dict[str, Any], *, final: bool = False) -> None:
        steps = vertex_steps(job_id, job)
        if steps or job_id not in self._steps:
            self._steps[job_id] = steps
        self._final = self._final or final

    def due(self, *, force: bool = False) -> Details | None:
        """A snapshot of every job's vertices, when one is due (or forced) and something changed."""
        if not (force or self._final or time.monotonic() - self._sent_at >= DETAILS_INTERVAL):
            return None
        steps = [step for job_steps in self._steps.values() for step in job_steps]
        self._final = False
        if not steps or steps == self._sent:
            return None
        self._sent, self._sent_at = steps, time.monotonic()
        return Details.of(steps, detail_counters(steps))


class RunContext:
    """One batch: its launcher process (while it matters), its facts, what it has seen of its jobs, and
    the signals between the event stream and the control requests (kill, pause, resume, detach)."""

    def __init__(self, engine: FlinkEngine, batch_id: str, process: ProcessRun | None, base: ProcessHandle,
                 facts: FlinkFacts, spec: LaunchSpec | None) -> None:
        self.engine = engine
        self.spec = spec
        self.log = log.bind(batch_id=batch_id, target=facts.target)
        self.yarn: FlinkYarn | None = engine.yarn(batch_id, facts.target)  # yarn-application: the RM's view
        self.process = process
        self.base = base  # the launcher process's handle
        self.facts = facts
        self.scan = OutputScanner()
        self.scan.job_ids = list(facts.job_ids)
        self.jobs = JobStates()
        self.details = VertexDetails()
        self.launcher: ProcessExit | None = None  # the launcher's end, for batchInfo
        self.notes: list[str] = []
        self.killing = False
        self.kill_sent = asyncio.Event()  # a kill through the RM has been answered (or failed)
        self.cancel_sent = 0.0
        self.wake = asyncio.Event()
        self.detached = asyncio.Event()
        # Pause and resume: one at a time; the event stream saves the handle when asked to.
        self.control_lock = asyncio.Lock()
        self.pausing_since = time.monotonic()
        self.resumed: asyncio.Future[str] | None = None
        self.dirty = False
        self.saved = asyncio.Event()
        self.cli_exited = asyncio.Event()
        if facts.cli_done:
            self.cli_exited.set()

    # --- facts ---------------------------------------------------------------------------

    @property
    def handle(self) -> FlinkHandle:
        return FlinkHandle.of(self.base, self.facts)

    @property
    def local(self) -> bool:
        return self.facts.target == LOCAL

    @property
    def application(self) -> bool:
        return Target(self.facts.target).application

    @property
    def job_ids(self) -> list[str]:
        return list(self.facts.job_ids)

    @property
    def paused(self) -> bool:
        return self.facts.phase.paused

    @property
    def holding(self) -> bool:
        return self.facts.phase.holding

    @property
    def launcher_running(self) -> bool:
        return self.process is not None and self.facts.phase.launcher_running

    @property
    def workdir(self) -> Path:
        return Path(self.base.workdir or (self.spec.workdir if self.spec else "."))

    def url(self, job_id: str, terminal: bool = False) -> str | None:
        if self.yarn is not None:
            return self.facts.tracking_url  # on YARN appUrl is the RM's tracking URL
        rest_url = self.facts.rest_url
        return job_url(rest_url, job_id, terminal) if rest_url else None

    def rest(self, timeout: float | None = None) -> FlinkRest:
        return FlinkRest(str(self.facts.rest_url), timeout=timeout or self.engine.rest_timeout)

    def exit(self, state: str, diagnostic: str | None) -> Exited:
        return Exited(state, diagnostic, FlinkExit(flink=FlinkInfo.of(self.facts, self.jobs.states),
                                                   launcher=self.launcher))

    def stop_pausing(self) -> None:
        """A pause that did not happen (it failed, or was interrupted and not asked for again)."""
        self.facts.phase = Phase.FOLLOWING
        self.facts.pending = None
        self.dirty = True
        self.wake.set()

    async def yarn_named(self, app_id: str, app: YarnApp | None = None) -> AppInfo:
        """The YARN application is known: it is appId, and its tracking URL appUrl."""
        assert self.yarn is not None
        self.facts.yarn_app = app_id
        if app is None:
            try:
                app = await self.yarn.application(app_id)
            except RmUnavailable as exc:
                self.notes.append(f"the {self.yarn.name} did not answer: {exc}")
        # Until the RM has the application (the launcher names it a moment before it submits), its tracking
        # URL is the RM's proxy path; the RM's own spelling replaces it once it answers.
        self.facts.tracking_url = (app.tracking_url if app is not None else None) or \
            f"{self.yarn.rm.urls[0]}/proxy/{app_id}/"
        self.facts.tracked = app is not None and app.tracking_url is not None
        return AppInfo(app_id=app_id, app_url=self.facts.tracking_url, handle=self.handle)

    # --- what every loop of the event stream yields first --------------------------------

    def drain_notes(self) -> list[Note]:
        notes, self.notes = [Note(text) for text in self.notes], []
        return notes

    def _handle_event(self) -> AppInfo | None:
        """The handle, when a pause or resume changed it and waits for it to be stored."""
        if not self.dirty:
            return None
        self.dirty = False
        paused_job = self.facts.paused_job if self.paused else None
        # While paused, appUrl shows the stopped job's page among the completed jobs.
        return AppInfo(app_url=self.url(paused_job, True) if paused_job else None, handle=self.handle)

    async def housekeeping(self) -> AsyncIterator[Event]:
        """Notes, a changed handle and due details."""
        for note in self.drain_notes():
            yield note
        details = self.details.due()
        if details is not None:
            yield details
        saved = self._handle_event()
        if saved is not None:
            yield saved
            self.saved.set()  # the consumer has stored it before it asked for the next event

    # --- waiting -------------------------------------------------------------------------

    async def sleep(self, seconds: float) -> bool:
        """Wait, waking early when `wake` is set (a kill, a pause, a resume); True if the gateway detached.
        Loops clear `wake` before they look at what to do, so a wake-up is never lost."""
        waits = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(self.detached.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self.detached.is_set()

    async def wait_or_detach(self, awaitable: Awaitable[Any], timeout: float) -> bool:
        """Wait for an event or a future; False on timeout. A detach cancels the caller: the control
        request stays on the batch row, for the next gateway process to finish."""
        waiting = asyncio.ensure_future(awaitable)
        detached = asyncio.ensure_future(self.detached.wait())
        try:
            await asyncio.wait({waiting, detached}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            detached.cancel()
            if not waiting.done():
                waiting.cancel()
        if self.detached.is_set():
            raise asyncio.CancelledError("the gateway detached")
        return waiting.done() and not waiting.cancelled()

    async def save_handle(self) -> None:
        """Have the event stream store the handle, and wait until it has."""
        self.saved.clear()
        self.dirty = True
        self.wake.set()
        if not await self.wait_or_detach(self.saved.wait(), HANDLE_SAVE_SECONDS):
            self.log.warning("flink.handle_not_saved")

    # --- control -------------------------------------------------------------------------

    async def cancel(self, job_ids: list[str], rest: FlinkRest | None = None) -> None:
        rest_url = self.facts.rest_url
        if not rest_url or not job_ids:
            return
        self.cancel_sent = time.monotonic()
        client = rest or FlinkRest(rest_url, timeout=self.engine.rest_timeout)
        try:
            for job_id in job_ids:
                try:
                    await client.cancel(job_id)
                    self.notes.append(f"cancel requested for Flink job {job_id}")
                except FlinkRestError as exc:
                    self.notes.append(f"cancel of Flink job {job_id} failed: {exc}")
                    self.log.warning("flink.cancel_failed", job_id=job_id, error=str(exc))
        finally:
            if rest is None:
                await client.close()
