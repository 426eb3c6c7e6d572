"""One Flink batch as the gateway sees it (the `Run` protocol): its event stream moves between the
launcher follower, the job watcher and holding while paused, by the run's phase (engines/flink_state.py);
kill, detach, pause and resume act on the shared state (engines/flink_context.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from engines.base import AppInfo, Event, Exited, LaunchSpec, Note, NotSupported
from engines.flink_cli import LOCAL, Target, display_argv
from engines.flink_context import RunContext
from engines.flink_launcher import LauncherFollower
from engines.flink_rest import ENDED
from engines.flink_savepoint import SavepointControl
from engines.flink_state import FlinkFacts, FlinkHandle, FlinkPaused, FlinkResumed
from engines.flink_watch import JobWatcher
from engines.process import ProcessRun
from engines.process_handle import ProcessHandle
from engines.yarn import RmUnavailable

if TYPE_CHECKING:
    from engines.flink import FlinkEngine

LOCAL_PAUSE_REFUSAL = ("the local mini cluster cannot take a savepoint that outlives it; run on a session "
                       "cluster to pause")
APPLICATION_PAUSE_REFUSAL = ("an application cluster exists for one job only; run on a session cluster "
                             "(target remote) to pause")


def pause_refusal(target: str) -> str | None:
    """Only a job on a session cluster can be stopped with a savepoint and started again from it."""
    if target == LOCAL:
        return LOCAL_PAUSE_REFUSAL
    if Target(target).application:
        return APPLICATION_PAUSE_REFUSAL
    return None


class FlinkRun:
    """One batch: its launcher process (while it matters) and the Flink job(s) it submitted."""

    def __init__(
        self, engine: FlinkEngine, batch_id: str, process: ProcessRun | None, base: ProcessHandle,
        facts: FlinkFacts, *, argv: list[str] | None = None, spec: LaunchSpec | None = None,
    ) -> None:
        self._run = RunContext(engine, batch_id, process, base, facts, spec)
        self._argv = argv  # a new launch: its command is the first note
        self._launcher = LauncherFollower(self._run)
        self._watcher = JobWatcher(self._run)
        self._savepoints = SavepointControl(self._run)

    @property
    def handle(self) -> FlinkHandle:
        return self._run.handle

    # --- events --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        run = self._run
        if self._argv is not None and run.process is not None:
            yield Note(f"launched pid {run.process.pid}: {display_argv(self._argv)}")
            if run.yarn is not None:
                yield AppInfo(app_state="PENDING")  # appId is the YARN application, once YARN has it
            elif run.application:
                job_id = run.job_ids[0]
                yield AppInfo(app_id=job_id, app_url=run.url(job_id), app_state="PENDING")
        try:
            async for event in self._phases():
                yield event
        finally:
            if run.yarn is not None:
                await run.yarn.close()

    async def _phases(self) -> AsyncIterator[Event]:
        run = self._run
        while not run.detached.is_set():
            if run.launcher_running:
                ended = False
                async for event in self._launcher.follow():
                    ended = isinstance(event, Exited)
                    yield event
                if ended or not run.facts.cli_done:
                    return  # the launcher's exit was the end, or the gateway detached
            if run.paused:
                async for event in self._hold():
                    yield event
                    if isinstance(event, Exited):
                        return
                continue  # resumed: a new launcher runs (or the gateway detached)
            ended = False
            async for event in self._watcher.follow():
                ended = isinstance(event, Exited)
                yield event
            if ended or not run.paused:
                return  # the end, or the gateway detached
            # paused: hold from here

    async def _hold(self) -> AsyncIterator[Event]:
        """Paused: no job runs. Wait for a resume (a new launcher), a kill, or the gateway to detach."""
        run = self._run
        while not run.detached.is_set():
            run.wake.clear()
            async for event in run.housekeeping():
                yield event
            if run.launcher_running:
                return  # resumed (a kill meanwhile stops the new launcher; following it tells the end)
            if run.killing:
                yield run.exit("KILLED", "canceled on request while paused (the savepoint "
                                         f"{run.facts.savepoint} is kept)")
                return
            await run.sleep(3600.0)

    # --- control -------------------------------------------------------------------------

    async def kill(self) -> None:
        """Local: stop the launcher (and its mini cluster). Cluster: cancel the job by REST; a launcher
        that has not submitted anything yet is stopped instead. Paused: nothing runs; the batch ends."""
        run = self._run
        run.killing = True
        run.wake.set()
        launcher_running = run.launcher_running
        grace = run.engine.kill_grace
        if run.yarn is not None:
            # yarn-application: the RM kills the whole application cluster (found by its tag if its id is
            # not known yet); a launcher still deploying it is stopped as well.
            try:
                if text := await run.yarn.kill(run.facts.yarn_app):
                    run.notes.append(text)
            except RmUnavailable as exc:
                run.notes.append(f"kill through the {run.yarn.name} failed: {exc}")
            finally:
                run.kill_sent.set()  # the end seen on YARN waits for this, so that the note precedes it
            if launcher_running:
                assert run.process is not None
                await run.process.terminate(grace)
            run.wake.set()
            return
        if run.holding and not launcher_running:
            return  # paused, or being paused: the event stream ends the batch once the job has stopped
        jobs = [j for j in run.job_ids if run.jobs.states.get(j) not in ENDED]
        if launcher_running and (run.local or not jobs or run.application):
            assert run.process is not None
            await run.process.terminate(grace)
            return
        await run.cancel(jobs)
        run.wake.set()

    async def detach(self) -> None:
        run = self._run
        run.detached.set()
        if run.resumed is not None and not run.resumed.done():
            # The resume request stays on the batch row; the next gateway process completes it.
            run.resumed.cancel()
        if run.process is not None:
            run.process.detach()

    def _refuse(self) -> None:
        reason = pause_refusal(self._run.facts.target)
        if reason:
            raise NotSupported(reason)

    async def pause(self) -> FlinkPaused:
        """Stop the job with a savepoint; returns its location for batchInfo."""
        self._refuse()
        return FlinkPaused(savepoint=await self._savepoints.pause())

    async def resume(self) -> FlinkResumed:
        """Start the job again from its savepoint; returns every JobID so far for batchInfo."""
        self._refuse()
        return FlinkResumed(app_ids=await self._savepoints.resume())
