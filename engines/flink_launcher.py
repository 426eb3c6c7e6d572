"""Following `flink run`: its output (the batch log) and the JobIDs, YARN application and web address it
prints, and what its exit means. With the local target the launcher is the job (its mini cluster's REST
API is read for details while it runs); with a cluster target it exits once the job is submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

from engines.base import AppInfo, Event, Exited, LogLines, Note
from engines.flink_context import ResumeFailed, RunContext
from engines.flink_rest import TERMINAL, FlinkRest, FlinkRestError, poll_interval
from engines.flink_state import Phase
from engines.process_handle import ProcessExit
from engines.yarn import RmUnavailable

LOCAL_DETAILS_FASTEST = 0.5  # the local mini cluster's REST API is read no more often than this
LOCAL_REST_TIMEOUT = 2.0  # a local REST read must not hold up the launcher's output for long


class LauncherFollower:
    def __init__(self, run: RunContext) -> None:
        self.run = run

    async def _output(self) -> AsyncIterator[LogLines | Exited | None]:
        """The launcher's output. On the local target, None now and then while a job runs: time to read
        the mini cluster's REST API."""
        run = self.run
        assert run.process is not None
        output = cast(AsyncGenerator[LogLines | Exited, None], run.process.output())
        if not run.local or not run.facts.rest_url:
            async for event in output:
                yield event
            return
        pending: asyncio.Future[LogLines | Exited] | None = None
        seen_job = 0.0
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(output.__anext__())
                timeout = None
                if run.facts.job_ids:
                    seen_job = seen_job or time.monotonic()
                    timeout = max(LOCAL_DETAILS_FASTEST, poll_interval(
                        time.monotonic() - seen_job, hurry=False, fastest=run.engine.poll_fastest,
                        slowest=run.engine.poll_slowest))
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if not done:
                    yield None
                    continue
                finished, pending = pending, None
                try:
                    event = finished.result()
                except StopAsyncIteration:
                    return
                yield event
        finally:
            if pending is not None:  # closed early: stop the read in flight before closing the output
                pending.cancel()
                await asyncio.wait({pending})
                if not pending.cancelled():
                    pending.exception()  # retrieved, so never reported as unhandled
            await output.aclose()

    async def follow(self) -> AsyncIterator[Event]:
        """The launcher's events until it exits (then what its exit means), or until the gateway detaches."""
        run = self.run
        exited: Exited | None = None
        local_rest = run.rest(LOCAL_REST_TIMEOUT) if run.local and run.facts.rest_url else None
        try:
            async for event in self._output():
                if event is None:
                    assert local_rest is not None
                    await self._read_local_details(local_rest)
                    details = run.details.due()
                    if details is not None:
                        yield details
                    continue
                if isinstance(event, Exited):
                    exited = event  # the last event: the generator ends by itself
                    continue
                new_jobs = run.scan.feed(event.lines)
                yield event
                if run.yarn is not None and run.scan.yarn_application and not run.facts.yarn_app:
                    yield await run.yarn_named(run.scan.yarn_application)
                if run.application and run.scan.web_url and not run.facts.rest_url:
                    run.facts.rest_url = run.scan.web_url
                    yield AppInfo(app_url=run.url(run.job_ids[0]), handle=run.handle)
                for job_id in new_jobs:
                    async for info in self._job_submitted(job_id):
                        yield info
                for note in run.drain_notes():
                    yield note
        finally:
            if local_rest is not None:
                await local_rest.close()
        if exited is None:
            return  # detached
        resuming = run.facts.phase is Phase.RESUMING
        run.facts.phase = Phase.PAUSED if resuming else Phase.FOLLOWING
        run.cli_exited.set()
        run.launcher = ProcessExit.parse(exited.info)
        if resuming:
            async for final in self._resume_failed(exited):
                yield final
            return
        async for final in self._exited(exited):
            yield final

    async def _read_local_details(self, rest: FlinkRest) -> None:
        """The mini cluster's view of its jobs, while it lives (it goes with its launcher)."""
        for job_id in self.run.job_ids:
            try:
                job = await rest.job(job_id)
            except FlinkRestError:
                continue  # not up yet, or already shutting down
            self.run.details.record(job_id, job, final=str(job.get("state")) in TERMINAL)

    async def _job_submitted(self, job_id: str) -> AsyncIterator[Event]:
        run = self.run
        if run.facts.phase is Phase.RESUMING:
            async for event in self._resumed_as(job_id):
                yield event
            return
        run.facts.job_ids.append(job_id)
        if job_id not in run.facts.app_ids:
            run.facts.app_ids.append(job_id)
        if len(run.facts.job_ids) == 1:
            yield AppInfo(app_id=job_id, app_url=run.url(job_id), app_state="RUNNING" if run.local else "PENDING",
                          running=True, handle=run.handle)
        else:
            yield Note(f"the program submitted another Flink job: {job_id}")
            yield AppInfo(handle=run.handle)
        if run.killing and not run.local:
            await run.cancel([job_id])

    async def _resumed_as(self, job_id: str) -> AsyncIterator[Event]:
        """The resume's launcher printed the new JobID: it becomes appId, and the batch runs again."""
        run = self.run
        savepoint = run.facts.savepoint
        run.facts.job_ids = [job_id]
        run.facts.app_ids.append(job_id)
        run.facts.phase = Phase.LAUNCHING
        run.facts.restored_from = savepoint
        run.facts.paused_job = None
        yield Note(f"resumed as Flink job {job_id} from savepoint {savepoint}")
        yield AppInfo(app_id=job_id, app_url=run.url(job_id), app_state="PENDING", running=True,
                      handle=run.handle)
        # Only now (the consumer has stored the new appId and handle) is the resume complete.
        if run.resumed is not None and not run.resumed.done():
            run.resumed.set_result(job_id)
        if run.killing:
            await run.cancel([job_id])

    async def _exited(self, exited: Exited) -> AsyncIterator[Event]:
        run = self.run
        code = ProcessExit.parse(exited.info).exit_code
        cause = run.scan.diagnostic()
        if run.local:
            details = run.details.due(force=True)  # the last snapshot the mini cluster gave
            if details is not None:
                yield details
            if len(run.job_ids) == 1 and (url := run.url(run.job_ids[0], True)):
                yield AppInfo(app_url=url)  # the job ended with its launcher: its page among the completed
            diagnostic = exited.diagnostic
            if exited.app_state == "FAILED" and cause:
                diagnostic = f"{diagnostic}: {cause}" if diagnostic else cause
            yield run.exit(exited.app_state, diagnostic)
            return
        jobs = run.job_ids
        if exited.app_state != "FINISHED" and (run.application or not jobs):
            if run.killing:
                diagnostic = "killed on request before a Flink job was running"
            else:
                diagnostic = f"flink run failed ({exited.diagnostic})" + (f": {cause}" if cause else "")
            yield run.exit(exited.app_state, diagnostic)
            return
        if not jobs:
            yield Note("flink run ended without submitting a Flink job")
            yield run.exit("FINISHED", None)
            return
        if not run.facts.rest_url and run.yarn is None:  # on YARN the RM tells (the job watcher)
            yield run.exit("FAILED", "the job was deployed, but the gateway does not know its REST address: "
                                     "set batchgate.flink.jobmanager=host:port to follow it")
            return
        if run.yarn is not None and run.facts.yarn_app and not run.facts.tracked:
            # Deployed: the RM has the application now, and its own spelling of the tracking URL.
            with contextlib.suppress(RmUnavailable):
                app = await run.yarn.application(run.facts.yarn_app)
                if app is not None and app.tracking_url:
                    run.facts.tracking_url, run.facts.tracked = app.tracking_url, True
        yield Note(f"flink run exited with code {code}; following Flink job {', '.join(jobs)} "
                   f"at {run.facts.rest_url or 'the REST address the ResourceManager tells'}")
        yield AppInfo(app_id=run.facts.yarn_app, app_url=run.url(jobs[0]), running=True, handle=run.handle)

    async def _resume_failed(self, exited: Exited) -> AsyncIterator[Event]:
        """A resume's launcher ended without a new job: the batch stays paused at its savepoint."""
        run = self.run
        cause = run.scan.diagnostic()
        how = exited.diagnostic or "exit code 0"
        reason = f"flink run -s {run.facts.savepoint} submitted no job ({how})" + (f": {cause}" if cause else "")
        if run.resumed is not None and not run.resumed.done():
            run.resumed.set_exception(ResumeFailed(reason))
        if run.killing:
            yield run.exit("KILLED", "killed on request while resuming")
            return
        yield Note(f"resume failed: {reason}; the batch stays paused")
        yield AppInfo(handle=run.handle)
