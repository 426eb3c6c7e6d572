"""Pause and resume of a Flink job on a session cluster (target remote, yarn-session).

A pause stops the job with a savepoint (POST /jobs/{id}/stop); a resume runs the same `flink run` again
with `-s <savepoint>`, which submits a new job (the new appId; every JobID so far is kept). The handle
records each step, so that a gateway restart follows up a savepoint asked for before it, and re-attaches
to a paused batch and leaves it paused.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

from engines.base import EngineError, NotSupported
from engines.flink_cli import OutputScanner, display_argv, launch_env, resume_argv, savepoint_dir
from engines.flink_context import ResumeFailed, RunContext
from engines.flink_rest import ENDED, TERMINAL, FlinkRest, FlinkRestError, JobNotFound
from engines.flink_state import Phase, SavepointRequest
from engines.process import ProcessRun, clean_env
from engines.runner import EXIT, OUTPUT

LAUNCHER_SETTLE_SECONDS = 30.0  # a pause waits this long for a detached launcher to exit
SAVEPOINT_TIMEOUT = 300.0  # a stop with a savepoint that takes longer is given up (Flink may still finish it)
STOP_WAIT_SECONDS = 30.0  # after the savepoint, how long to wait for the job to turn FINISHED
SAVEPOINT_POLL_SECONDS = 0.25
TASKS_WAIT_SECONDS = 60.0  # how long a pause waits for the job's tasks to run before it asks anyway
SAVEPOINT_ATTEMPTS = 3  # a savepoint refused because tasks were not running yet is asked for again
_TASKS_NOT_READY = "Not all required tasks are currently running"


class SavepointControl:
    """Pause and resume of one run; the caller has checked that its target allows them."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def _poll_pause(self) -> None:
        await self.run.wait_or_detach(asyncio.sleep(SAVEPOINT_POLL_SECONDS), SAVEPOINT_POLL_SECONDS + 1)

    async def pause(self) -> str | None:
        """Stop the job with a savepoint; returns the savepoint's location."""
        run = self.run
        async with run.control_lock:
            if run.paused:
                return run.facts.savepoint
            if run.killing:
                raise NotSupported("the batch is being killed")
            if not run.facts.cli_done and not await run.wait_or_detach(run.cli_exited.wait(), LAUNCHER_SETTLE_SECONDS):
                raise NotSupported("flink run is still submitting the job; pause it once it runs")
            pending = run.facts.pending
            if len(run.facts.job_ids) > 1:
                raise NotSupported("the program submitted several Flink jobs; only a single-job batch can be "
                                   "paused and resumed")
            job_id = pending.job if pending is not None else (run.job_ids[0] if run.job_ids else None)
            if job_id is None:
                raise NotSupported("no Flink job is known yet")
            if run.jobs.states.get(job_id) in ENDED:
                raise NotSupported(f"Flink job {job_id} has already ended ({run.jobs.states[job_id]})")
            run.facts.phase, run.pausing_since = Phase.PAUSING, time.monotonic()
            run.wake.set()
            rest = run.rest()
            try:
                location = await self._take_savepoint(rest, job_id)
                stopped = await self._await_stopped(rest, job_id)
            except asyncio.CancelledError:
                raise  # the gateway detached: the request and the handle's "pausing" stay for the next one
            except Exception as exc:
                run.stop_pausing()
                if isinstance(exc, FlinkRestError):  # Flink's answer: the job keeps running
                    run.notes.append(f"pause failed: {exc}")
                    raise NotSupported(str(exc)) from None
                raise
            finally:
                await rest.close()
            run.facts.pending = None
            run.facts.phase, run.facts.savepoint, run.facts.paused_job = Phase.PAUSED, location, job_id
            run.notes.append(f"Flink job {job_id} stopped with a savepoint at {location}"
                             + ("" if stopped == "FINISHED" else f" (the job is {stopped})"))
            await run.save_handle()
            run.log.info("flink.paused", job_id=job_id, savepoint=location)
            return location

    async def _take_savepoint(self, rest: FlinkRest, job_id: str) -> str:
        """Ask for a stop with a savepoint (or follow the one asked before a gateway restart) until done."""
        run = self.run
        pending = run.facts.pending
        request = pending.request if pending is not None and pending.job == job_id else None
        directory = (pending.dir if pending is not None and pending.dir else
                     savepoint_dir(run.spec.conf if run.spec else {}, run.workdir))
        deadline = time.monotonic() + SAVEPOINT_TIMEOUT
        attempts = 0
        while True:
            if request is None:
                # A job is RUNNING before all its tasks are; a savepoint needs them running.
                await self._await_tasks_running(rest, job_id, deadline)
                request = await rest.stop_with_savepoint(job_id, directory)
                attempts += 1
                run.facts.pending = SavepointRequest(job_id, request, directory)
                run.notes.append(f"stopping Flink job {job_id} with a savepoint in {directory}")
                await run.save_handle()
            try:
                status = await rest.savepoint_status(job_id, request)
            except JobNotFound:
                # The JobManager no longer knows the request (it was asked before a restart of ours, long
                # ago): the job tells whether it stopped, the directory where its savepoint is.
                return await self._savepoint_after_the_fact(rest, job_id, directory)
            if status.completed:
                if status.location:
                    return status.location
                failure = status.failure or "no location"
                if (_TASKS_NOT_READY in failure and attempts < SAVEPOINT_ATTEMPTS
                        and time.monotonic() < deadline):
                    run.notes.append(f"the savepoint of Flink job {job_id} failed ({failure}); trying again")
                    request = None
                    await run.wait_or_detach(asyncio.sleep(1.0), 2.0)
                    continue
                raise FlinkRestError(f"the savepoint of Flink job {job_id} failed: {failure}")
            if time.monotonic() > deadline:
                raise FlinkRestError(f"no savepoint of Flink job {job_id} after {SAVEPOINT_TIMEOUT:.0f}s")
            await self._poll_pause()

    async def _await_tasks_running(self, rest: FlinkRest, job_id: str, deadline: float) -> None:
        """Until the job and its tasks run (a source may have finished), for at most TASKS_WAIT_SECONDS."""
        until = min(deadline, time.monotonic() + TASKS_WAIT_SECONDS)
        while time.monotonic() < until:
            job = await rest.job(job_id)
            state = str(job["state"])
            if state in TERMINAL:
                raise NotSupported(f"Flink job {job_id} has already ended ({state})")
            statuses = {str(v.get("status")) for v in job.get("vertices") or [] if isinstance(v, dict)}
            if state == "RUNNING" and (not statuses or (statuses <= {"RUNNING", "FINISHED"} and "RUNNING" in statuses)):
                return
            await self._poll_pause()

    async def _savepoint_after_the_fact(self, rest: FlinkRest, job_id: str, directory: str) -> str:
        job = await rest.job(job_id)
        if str(job.get("state")) not in TERMINAL:
            self.run.facts.pending = None
            return await self._take_savepoint(rest, job_id)  # still running: ask again
        found = await asyncio.to_thread(_newest_savepoint, directory, job_id)
        if found is None:
            raise FlinkRestError(f"Flink job {job_id} is {job.get('state')} and its savepoint is unknown")
        return found

    async def _await_stopped(self, rest: FlinkRest, job_id: str) -> str:
        """After the savepoint the job turns FINISHED within seconds; its last vertex figures are kept."""
        run = self.run
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        state = run.jobs.states.get(job_id, "RUNNING")
        while time.monotonic() < deadline:
            try:
                job = await rest.job(job_id)
            except FlinkRestError:
                await run.wait_or_detach(asyncio.sleep(0.5), 1.5)
                continue
            state = str(job["state"])
            if state in TERMINAL:
                run.details.record(job_id, job, final=True)
                run.jobs.states[job_id] = state
                run.notes.append(f"Flink job {job_id} is {state}")
                return state
            await self._poll_pause()
        return state

    async def resume(self) -> list[str]:
        """Run the same `flink run` with -s <savepoint>; returns every JobID so far once the new job's
        JobID is known (and stored as appId)."""
        run = self.run
        async with run.control_lock:
            if not run.paused:
                return list(run.facts.app_ids)  # resumed already (before a restart of the gateway)
            if run.killing:
                raise NotSupported("the batch is being killed")
            resumed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            run.resumed = resumed
            try:
                if run.facts.phase is not Phase.RESUMING:  # else a launcher started before a gateway restart runs
                    await self._launch_resume()
                job_id = await resumed
            except (ResumeFailed, EngineError) as exc:  # nothing runs: the batch stays paused
                raise NotSupported(f"resume failed: {exc}") from None
            finally:
                run.resumed = None
            run.log.info("flink.resumed", job_id=job_id)
            return list(run.facts.app_ids)

    async def _launch_resume(self) -> None:
        run = self.run
        savepoint = run.facts.savepoint or ""
        if not savepoint:
            raise NotSupported("no savepoint is known for this batch")
        spec = run.spec
        if spec is None:
            raise NotSupported("the batch's launch request is unknown to this run")
        argv = resume_argv(list(run.facts.argv or run.engine.command(spec)[0]), savepoint)
        workdir = run.workdir
        offset = await asyncio.to_thread(_prepare_relaunch, workdir)
        env = launch_env(spec, clean_env())
        launched = await run.engine.supervisor.launch(argv, workdir, env)
        # The new launcher appends to the same output file: follow it from where the last one ended.
        process = ProcessRun(run.engine.supervisor, launched.handle, offset)
        run.process = process
        run.base = process.handle
        run.scan = OutputScanner()
        run.facts.phase, run.facts.submitted, run.facts.job_ids = Phase.RESUMING, time.time(), []
        run.cli_exited.clear()
        run.notes.append(f"resuming from savepoint {savepoint}: launched pid {process.pid}: {display_argv(argv)}")
        await run.save_handle()


def _prepare_relaunch(workdir: Path) -> int:
    """Forget the last launcher's exit status; returns where the next launcher's output will start."""
    (workdir / EXIT).unlink(missing_ok=True)
    output = workdir / OUTPUT
    return output.stat().st_size if output.exists() else 0


def _newest_savepoint(directory: str, job_id: str) -> str | None:
    """The newest finished savepoint of a job in a local directory (savepoint-<6 hex of the JobID>-…)."""
    if not directory.startswith("file:"):
        return None
    root = Path(urlsplit(directory).path)
    found = [p for p in root.glob(f"savepoint-{job_id[:6]}-*") if (p / "_metadata").is_file()]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    return newest.as_uri()
