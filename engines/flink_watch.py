"""Following a Flink job on its cluster once the launcher has submitted it: its state from the cluster's
REST API (/jobs/{id}), read at an interval that starts fast and slows as the job ages, and is fast again
while the job is in a transitional state or being canceled; on YARN also what the ResourceManager says
(where the JobManager is, whether the application ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from engines.base import AppInfo, Event, LogLines, Note
from engines.flink_context import RunContext
from engines.flink_rest import (
    ENDED,
    NOT_FOUND,
    TERMINAL,
    TRANSITIONAL,
    FlinkRest,
    FlinkRestError,
    JobNotFound,
    app_state,
    conclusion,
    latest_failure,
    overall_state,
    poll_interval,
)
from engines.flink_state import Phase
from engines.flink_yarn import rest_url_of
from engines.yarn import RmUnavailable, YarnApp

CANCEL_RETRY_SECONDS = 5.0
KILL_ANSWER_SECONDS = 30.0  # how long an end seen on YARN waits for the answer to our own kill
ORPHANED_PAUSE_SECONDS = 120.0  # a recovered, half-done pause that no pause request picks up is dropped


class JobWatcher:
    def __init__(self, run: RunContext) -> None:
        self.run = run

    def _ended(self, job_id: str) -> bool:
        return self.run.jobs.states.get(job_id) in ENDED

    async def follow(self) -> AsyncIterator[Event]:
        """The jobs' events until all have ended (Exited), the batch is paused, or the gateway detaches."""
        run = self.run
        if run.yarn is not None and not run.facts.rest_url:
            located: list[Event] = []
            async for event in self._locate_on_yarn(located):
                yield event
            if located:  # the end: the application is gone or never showed up
                for event in located:
                    yield event
                return
            if run.detached.is_set():
                return
        rest_url = run.facts.rest_url or ""
        jobs = run.job_ids
        if not rest_url or not jobs:
            yield run.exit("FAILED", "nothing to follow: no Flink job or REST address is known")
            return
        rest = FlinkRest(rest_url, timeout=run.engine.rest_timeout)
        final: list[Event] = []
        try:
            async for event in self._watch(rest, jobs, final):
                yield event
        finally:
            await rest.close()
        for event in final:  # after closing: the consumer stops reading at Exited
            yield event

    async def _locate_on_yarn(self, final: list[Event]) -> AsyncIterator[Event]:
        """Find the application on YARN (by id, else by tag) and its JobManager's REST address, which
        the RM reports as the AM's address; the closing events go to `final` if it has ended."""
        run = self.run
        assert run.yarn is not None
        since = time.monotonic()
        said = False
        while not run.detached.is_set():
            try:
                app = await run.yarn.application(run.facts.yarn_app)
            except RmUnavailable as exc:
                app = None
                if not said:
                    said = True
                    yield Note(f"the {run.yarn.name} did not answer: {exc}; retrying")
            if app is not None:
                if run.facts.yarn_app != app.app_id:
                    yield await run.yarn_named(app.app_id, app)
                if app.terminal:
                    final.extend(await self._ended_on_yarn(app))
                    return
                url = rest_url_of(app)
                if url is not None:
                    run.facts.rest_url = url
                    yield Note(f"the {run.yarn.name} reports the JobManager of {app.app_id} at {url}")
                    yield AppInfo(handle=run.handle)
                    return
            if time.monotonic() - since > run.engine.lost_after:
                what = run.facts.yarn_app or f"an application tagged {run.yarn.tag}"
                final.append(run.exit("FAILED", f"{what} did not show a running JobManager on YARN within "
                                                f"{run.engine.lost_after:.0f}s"))
                return
            if await run.sleep(poll_interval(time.monotonic() - since, hurry=True,
                                             fastest=run.engine.poll_fastest, slowest=run.engine.poll_slowest)):
                return

    async def _yarn_check(self, jobs: list[str], final: list[Event]) -> AsyncIterator[Event]:
        """yarn-application: the RM's tracking URL once it has one, and the closing events (into `final`)
        if YARN says the application ended before its jobs did (a JobManager that died, a kill through
        the RM or from outside)."""
        run = self.run
        assert run.yarn is not None
        try:
            app = await run.yarn.application(run.facts.yarn_app)
        except RmUnavailable:
            return  # the JobManager's REST API still tells; an unreachable one is handled there
        if app is None:
            return
        if app.tracking_url and not run.facts.tracked:
            run.facts.tracking_url, run.facts.tracked = app.tracking_url, True
            yield AppInfo(app_url=app.tracking_url, handle=run.handle)
        if app.terminal and not all(self._ended(j) for j in jobs):
            final.extend(await self._ended_on_yarn(app))

    async def _ended_on_yarn(self, app: YarnApp) -> list[Event]:
        """The application ended on YARN: the JobManager's log, then the end with YARN's diagnostics."""
        run = self.run
        assert run.yarn is not None
        if run.killing:
            # The RM may report the application killed before it answered our PUT: the kill's note goes first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.kill_sent.wait(), KILL_ANSWER_SECONDS)
        events: list[Event] = [*run.drain_notes(), *await run.yarn.jobmanager_log(app)]
        details = run.details.due(force=True)
        if details is not None:
            events.append(details)
        state = "KILLED" if run.killing and app.app_state != "FINISHED" else app.app_state
        diagnostic = app.diagnostic or (None if state == "FINISHED" else
                                        f"the YARN application {app.app_id} ended {app.state}/{app.final_status}")
        events.append(run.exit(state, diagnostic))
        return events

    async def _watch(self, rest: FlinkRest, jobs: list[str], final: list[Event]) -> AsyncIterator[Event]:
        """Poll the jobs until all have ended (or the batch is paused); the closing events go to `final`."""
        run = self.run
        rest_url = rest.base_url
        unreachable_since: float | None = None
        while True:
            run.wake.clear()
            async for event in run.housekeeping():
                yield event
            if run.paused:
                return
            if run.facts.phase is Phase.PAUSING:  # pause() follows the job until it has stopped
                if (not run.control_lock.locked()
                        and time.monotonic() - run.pausing_since > ORPHANED_PAUSE_SECONDS):
                    # A pause interrupted by a restart of the gateway, and not asked for again.
                    run.stop_pausing()
                    yield Note("an interrupted pause was not asked for again; following the Flink job")
                    continue
                if await run.sleep(1.0):
                    return
                continue
            hurry = run.killing
            try:
                for job_id in jobs:
                    if self._ended(job_id):
                        continue
                    async for event in self._poll(rest, job_id):
                        yield event
                    hurry = hurry or run.jobs.states.get(job_id) in TRANSITIONAL
            except FlinkRestError as exc:
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    run.log.warning("flink.rest_unreachable", rest_url=rest_url, error=str(exc))
                    yield Note(f"the Flink REST API at {rest_url} is unreachable ({exc}); retrying")
                elif now - unreachable_since > run.engine.lost_after:
                    run.log.warning("flink.lost", rest_url=rest_url, error=str(exc))
                    final.append(run.exit("FAILED", f"lost contact with the Flink REST API at {rest_url} "
                                                    f"for {now - unreachable_since:.0f}s: {exc}"))
                    return
            else:
                if unreachable_since is not None:
                    unreachable_since = None
                    yield Note(f"the Flink REST API at {rest_url} answers again")
            if run.yarn is not None:
                async for event in self._yarn_check(jobs, final):
                    yield event
                if final:
                    return
            if run.holding:
                continue
            details = run.details.due()
            if details is not None:
                yield details
            if all(self._ended(j) for j in jobs):
                final.extend(await self._conclude(rest, jobs))
                return
            if run.killing and time.monotonic() - run.cancel_sent > CANCEL_RETRY_SECONDS:
                await run.cancel([j for j in jobs if not self._ended(j)], rest)
                continue
            delay = poll_interval(time.time() - run.facts.submitted, hurry=hurry, fastest=run.engine.poll_fastest,
                                  slowest=run.engine.poll_slowest)
            if await run.sleep(delay):
                return

    async def _poll(self, rest: FlinkRest, job_id: str) -> AsyncIterator[Event]:
        run = self.run
        states, diagnostics = run.jobs.states, run.jobs.diagnostics
        try:
            data = await rest.job(job_id)
        except JobNotFound:
            if run.application and time.time() - run.facts.submitted < run.engine.lost_after:
                return  # the application's main() has not submitted it yet
            if run.holding:
                return
            states[job_id] = NOT_FOUND
            diagnostics[job_id] = (
                f"Flink job {job_id} is not known to the cluster at {rest.base_url} (the cluster was restarted, "
                "or the job expired from its job store)")
            yield Note(diagnostics[job_id])
            if len(run.facts.job_ids) == 1:
                yield AppInfo(app_state="NOT_FOUND")
            return
        if run.holding:
            return  # a pause began while this was asked: pause() reads the stopping job itself
        state = str(data["state"])
        run.details.record(job_id, data, final=state in TERMINAL)
        if state == states.get(job_id):
            return
        states[job_id] = state
        yield Note(f"Flink job {job_id} is {state}")
        diagnostic = None
        if state in ("RESTARTING", "FAILING", "FAILED"):
            try:
                timestamp, diagnostic, lines = latest_failure(await rest.exceptions(job_id))
            except FlinkRestError:
                timestamp, lines = None, []
            if diagnostic:
                diagnostics[job_id] = diagnostic
            if lines and (job_id not in run.jobs.failures or run.jobs.failures[job_id] != timestamp):
                run.jobs.failures[job_id] = timestamp
                yield LogLines([f"Flink job {job_id} failure:", *lines])
        shown = f"{state.lower()} after: {diagnostic}" if diagnostic and state != "FAILED" else diagnostic
        if len(run.facts.job_ids) == 1:
            yield AppInfo(app_state=app_state(state), app_url=run.url(job_id, state in TERMINAL),
                          running=True, diagnostic=shown)
            return
        yield AppInfo(app_state=overall_state(run.job_ids, states), running=True,
                      diagnostic=f"job {job_id} {shown}" if shown else None)

    async def _conclude(self, rest: FlinkRest, jobs: list[str]) -> list[Event]:
        run = self.run
        state, diagnostic = conclusion(jobs, run.jobs.states, run.jobs.diagnostics, canceled_on_request=run.killing)
        events: list[Event] = []
        details = run.details.due(force=True)
        if details is not None:
            events.append(details)
        if run.application:
            try:
                await rest.shutdown_cluster()
                events.append(Note("the application cluster was asked to shut down"))
            except FlinkRestError as exc:
                events.append(Note(f"could not shut the application cluster down: {exc}"))
        app_id = run.facts.yarn_app
        if run.yarn is not None and app_id:
            app = await run.yarn.ended(app_id)
            if app is None:
                events.append(Note(f"YARN did not record the end of {app_id} in time; its JobManager log is not "
                                   "copied"))
            else:
                events.extend(await run.yarn.jobmanager_log(app))
        events.append(run.exit(state, diagnostic))
        return events
