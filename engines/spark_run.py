"""One Spark batch as the gateway sees it (the `Run` protocol): the event stream that decides, from the
launcher's output and exit and from the poller's findings (engines/spark_poll.py), when the application
ended; and kill and detach.

Which source decides that an application ended depends on where its driver runs:
- client deploy mode (and local masters): the driver is the launcher, so the launcher's exit is the end
  (seen at once through the runner's pidfd); a cluster API only adds the application's state;
- cluster deploy mode: the application outlives spark-submit, so the cluster API decides (standalone
  REST server / master JSON, YARN ResourceManager, Kubernetes driver pod).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp

from engines.base import Details, Event, Exited, LogLines, Note
from engines.process import ProcessRun
from engines.process_handle import ProcessHandle
from engines.spark_context import RunContext, SparkTimings
from engines.spark_output import LauncherOutput
from engines.spark_poll import REFRESH, Final, Poller
from engines.spark_state import Kill, LauncherState, SparkFacts, SparkHandle
from engines.spark_status import ClusterApi, ClusterStatus, StandaloneApi, StatusUnavailable, YarnApi
from engines.yarn import am_log_events

KILL_NOTE_WAIT = 6.0  # seconds the end waits for a kill request in flight, so that its note is kept


class SparkRun:
    """One spark-submit, launched or re-attached, merged with what the cluster says about its app."""

    def __init__(
        self, timings: SparkTimings, *, process: ProcessRun | None, base: ProcessHandle, facts: SparkFacts,
        api: ClusterApi | None, notes: list[str], launcher_lost: bool = False, unreported: tuple[str, ...] = (),
    ) -> None:
        self.state = RunContext(timings, process=process, base=base, facts=facts, api=api,
                                launcher_lost=launcher_lost, unreported=unreported)
        self._poller = Poller(self.state)
        self._notes = notes
        self._output_room = asyncio.Semaphore(16)  # back-pressure on the launcher's output
        self._detached = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._kill_sent = asyncio.Event()  # clear while a kill request to the cluster is in flight
        self._kill_sent.set()

    @property
    def handle(self) -> SparkHandle:
        return self.state.handle

    # --- the event stream ----------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        run = self.state
        for text in self._notes:
            yield Note(text)
        final: Exited | None = None
        async with aiohttp.ClientSession() as session:
            run.session = session
            if run.process is not None:
                self._tasks.append(asyncio.create_task(self._pump(run.process)))
            self._tasks.append(asyncio.create_task(self._poller.poll()))
            decide = self._decide()
            try:
                async for event in decide:
                    if isinstance(event, Exited):
                        final = event
                        break
                    yield event
                if final is not None:
                    # A kill in flight when the end was seen still gets to say what it did.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._kill_sent.wait(), KILL_NOTE_WAIT)
                    while not run.queue.empty():
                        if isinstance(item := run.queue.get_nowait(), Note | LogLines):
                            yield item
            finally:
                run.finished = True
                await decide.aclose()
                await self._stop_tasks()
                run.session = None
        if final is not None:
            yield final  # after the session and the watchers are closed: the consumer may stop here

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        if self._poller.details_task is not None:
            tasks.append(self._poller.details_task)
            self._poller.details_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, process: ProcessRun) -> None:
        async for event in process.output():
            await self._output_room.acquire()
            await self.state.queue.put(event)

    async def _next(self) -> Any:
        getter = asyncio.ensure_future(self.state.queue.get())
        detached = asyncio.ensure_future(self._detached.wait())
        try:
            await asyncio.wait({getter, detached}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            detached.cancel()
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    async def _decide(self) -> AsyncGenerator[Event, None]:
        run = self.state
        while True:
            item = await self._next()
            if item is None:
                return  # detached: leave the application running
            if isinstance(item, LogLines):
                self._output_room.release()
                run.parser.feed(item.lines)
                yield item
                if info := run.from_launcher():
                    yield info
            elif isinstance(item, Exited) and not isinstance(item, Final):
                self._output_room.release()
                run.launcher = LauncherState.EXITED
                run.wake.set()
                if info := run.from_launcher():
                    yield info
                final = await self._launcher_ended(item)
                if final is not None:
                    if (details := await self._poller.final_details()) is not None:
                        yield details  # before the end: the supervisor stops reading at Exited
                    yield final
                    return
            elif isinstance(item, ClusterStatus):
                async for event in self._cluster_said(item):
                    yield event
                    if isinstance(event, Exited):
                        return
            elif isinstance(item, Final):
                if (details := await self._poller.final_details()) is not None:
                    yield details
                yield run.exited(item.app_state, item.diagnostic)
                return
            elif isinstance(item, Note):
                yield item
            elif isinstance(item, Details):
                run.sent_steps = [step.stored() for step in item.steps]  # as the poller built them
                yield item
            elif item is REFRESH and (info := run.from_launcher()):
                yield info

    async def _cluster_said(self, status: ClusterStatus) -> AsyncIterator[Event]:
        run = self.state
        if info := run.from_cluster(status):
            yield info
        if status.found and run.kill is Kill.REQUESTED and run.cluster:
            # Killed while spark-submit was still submitting: the application showed up since.
            run.kill = Kill.SENT
            self._tasks.append(asyncio.create_task(self._kill_through_api()))
        if run.cluster and status.terminal:
            am_log = await self._am_log()
            for event in am_log:
                yield event
            if (details := await self._poller.final_details()) is not None:
                yield details
            diagnostic = status.diagnostic or run.ended_by_cluster(status)
            if status.state == "FAILED" and (cause := _telling_line(am_log)):
                diagnostic = f"{cause} ({run.api_name}: {diagnostic})"
            yield run.exited(status.state or "FAILED", diagnostic)

    async def _am_log(self) -> list[Note | LogLines]:
        """YARN cluster mode: the application master's (the driver's) log, once the application ended."""
        run = self.state
        if not isinstance(run.api, YarnApi) or run.api.last is None or run.session is None:
            return []
        return await am_log_events(run.api.rm, run.session, run.api.last)

    async def _launcher_ended(self, exited: Exited) -> Exited | None:
        """The launcher is gone. The end of the batch, or None if the application lives on in the cluster."""
        run = self.state
        if not run.cluster or run.api is None:
            # Client mode; or no cluster API to ask: spark-submit waited for the application, so its exit
            # tells the end.
            return self._from_launcher_exit(exited)
        waits = run.facts.launcher_waits
        if run.yarn and not waits and exited.app_state == "FINISHED" and run.identity():
            await run.queue.put(Note(
                f"spark-submit returned once YARN had {run.identity()} (spark.yarn.submit.waitAppCompletion="
                "false); the ResourceManager tells the rest"))
        if not run.api_answered and run.session is not None:
            with contextlib.suppress(StatusUnavailable):
                status = await run.api.status(run.session, run.facts.ids)
                if status.found:
                    await run.queue.put(status)
                    return None  # keep following the application through the cluster API
        # A standalone cluster-mode spark-submit never waits for its application; on YARN it may not.
        submits_only = isinstance(run.api, StandaloneApi) or not waits
        if run.identity() is not None:
            if run.api_answered or run.launcher_lost or submits_only:
                return None
            # The cluster API does not know the application spark-submit waited for: trust spark-submit.
            return self._from_launcher_exit(exited)
        if run.kill is not Kill.NONE:
            return run.exited("KILLED", "killed before the application was submitted", exited.info)
        if exited.app_state == "FINISHED" and submits_only:
            # It returns right after submitting: without an id there is nothing to follow.
            what = "driver" if isinstance(run.api, StandaloneApi) else "application"
            return run.exited("FAILED", f"spark-submit ended without naming the {what} it submitted", exited.info)
        return self._from_launcher_exit(exited)

    def _from_launcher_exit(self, exited: Exited) -> Exited:
        run = self.state
        diagnostic = exited.diagnostic
        if exited.app_state == "FAILED":
            if run.launcher_lost and not run.cluster:
                app = run.facts.app_id or "the application"
                diagnostic = (f"{app} was lost: its launcher (spark-submit) ended while the gateway was away "
                              "and left no exit status; in client mode the driver runs inside the launcher")
            elif run.parser.diagnostic:
                diagnostic = f"{run.parser.diagnostic} (spark-submit {exited.diagnostic or 'failed'})"
        return run.exited(exited.app_state, diagnostic, exited.info)

    # --- control -------------------------------------------------------------------------------

    async def kill(self) -> None:
        run = self.state
        if run.kill is Kill.NONE:
            run.kill = Kill.REQUESTED
        run.wake.set()
        if run.cluster and run.api is not None:
            await self._kill_through_api()
            if run.session is not None and not run.finished:  # only while events() is followed
                self._tasks.append(asyncio.create_task(self._confirm_kill()))
        elif run.yarn and run.api is not None:
            # Client mode: the driver dies with the launcher, but YARN would record a driver that stops on
            # SIGTERM as a success; the RM records the kill. The launcher's exit is the end, as ever.
            await self._kill_through_api()
        if run.process is not None and not run.launcher_done:
            await run.process.terminate(run.timings.kill_grace)

    async def _kill_through_api(self) -> None:
        """Ask the cluster to kill the application (once it is known: until then, nothing to ask)."""
        assert self.state.api is not None
        self._kill_sent.clear()
        try:
            await self._ask_api_to_kill(self.state.api)
        finally:
            self._kill_sent.set()

    async def _ask_api_to_kill(self, api: ClusterApi) -> None:
        run = self.state
        try:
            if run.session is not None:
                text = await api.kill(run.session, run.facts.ids)
            else:
                async with aiohttp.ClientSession() as session:
                    text = await api.kill(session, run.facts.ids)
        except StatusUnavailable as exc:
            await run.queue.put(Note(f"kill through the {api.name} failed: {exc}"))
            return
        if text:
            run.kill = Kill.SENT
            await run.queue.put(Note(text))

    async def _confirm_kill(self) -> None:
        run = self.state
        await asyncio.sleep(run.timings.kill_confirm)
        await run.queue.put(Final("KILLED", f"kill requested; the {run.api_name} did not confirm the end within "
                                            f"{run.timings.kill_confirm:.0f}s"))

    async def detach(self) -> None:
        if self.state.process is not None:
            self.state.process.detach()
        self._detached.set()


def _telling_line(events: list[Note | LogLines]) -> str | None:
    """The most telling line of a driver's log (its exception), as of spark-submit's output."""
    parser = LauncherOutput()
    for event in events:
        if isinstance(event, LogLines):
            parser.feed(event.lines)
    return parser.diagnostic
