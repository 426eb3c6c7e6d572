"""Polling where no event exists: the cluster API (or, for a quiet local/client driver, the event log's
name) on an interval that starts fast and slows down while nothing changes, and on the same timer the
driver's Spark UI for details (jobs and stages); the last details from the event log at the end.

What it learns goes to the run's queue, which the event stream (engines/spark_run.py) reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from engines.base import Details, Exited, Note
from engines.spark_context import RunContext
from engines.spark_details import DetailsUnavailable, SparkUi
from engines.spark_eventlog import EVENT_LOG_MAX_BYTES, EVENT_LOG_MAX_BYTES_WITH_LIVE, read_event_log
from engines.spark_output import event_log_app_id
from engines.spark_state import Kill, PollTarget
from engines.spark_status import StandaloneApi, StatusUnavailable

# Details from the driver's UI: asked at most every DETAILS_ACTIVE seconds while a job or stage runs (or
# something changed), every DETAILS_IDLE seconds otherwise; a snapshot is saved when a job or stage
# appears or changes state, else at most every DETAILS_SAVE_EVERY seconds.
DETAILS_ACTIVE = 1.0
DETAILS_IDLE = 5.0
DETAILS_SAVE_EVERY = 5.0


class Final(Exited):
    """The run's own decision that the application ended (not the launcher's exit)."""


REFRESH = object()  # the poller learned a launcher fact (the app id from the event log)


class Poller:
    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.details_task: asyncio.Task[None] | None = None
        self._details_next = 0.0
        self._sent_shape: list[tuple[Any, ...]] | None = None
        self._sent_at = 0.0

    def _target(self) -> PollTarget | None:
        """What to poll next, or None (nothing ever again)."""
        run = self.run
        if run.cluster:
            return PollTarget.API if run.api is not None else None
        if run.launcher_done:
            return None  # client mode: the launcher's exit has decided
        known = bool(run.parser.facts.app_id or run.facts.app_id)
        if run.api is not None and (known or not isinstance(run.api, StandaloneApi)):
            return PollTarget.API  # a standalone master is asked by app id; YARN finds the app by its tag
        if not known:
            return PollTarget.EVENT_LOG
        return PollTarget.WAIT  # the driver's UI may still be asked for details while the launcher runs

    async def poll(self) -> None:
        run = self.run
        assert run.session is not None
        eventlog = run.workdir / "eventlog"
        outage_since: float | None = None
        missing_since: float | None = None
        changed_at = time.monotonic()
        last: tuple[Any, ...] = ()
        lost_after = run.timings.lost_after
        while True:
            target, ui = self._target(), self._details_ui()
            if target is None and ui is None:
                return
            now = time.monotonic()
            if target is PollTarget.API:
                assert run.api is not None
                try:
                    status = await run.api.status(run.session, run.facts.ids)
                except StatusUnavailable as exc:
                    if outage_since is None:
                        outage_since = now
                        await run.queue.put(Note(f"{run.api.name} did not answer: {exc}; retrying"))
                    if run.cluster and run.launcher_done and now - outage_since > lost_after:
                        await run.queue.put(Final("FAILED", f"lost contact with the {run.api.name} for "
                                                            f"{lost_after:.0f}s: {exc}"))
                        return
                else:
                    if outage_since is not None:
                        await run.queue.put(Note(f"{run.api.name} answers again"))
                    outage_since = None
                    await run.queue.put(status)
                    if status.terminal and run.cluster:
                        return
                    missing_since = None if status.found else (missing_since or now)
                    if run.cluster and missing_since is not None and run.launcher_done:
                        if run.kill is not Kill.NONE and run.identity() is not None:
                            await run.queue.put(Final("KILLED", "killed on request; the application is gone"))
                            return
                        if now - missing_since > lost_after:
                            what = run.identity() or "the application"
                            await run.queue.put(Final("FAILED", f"{what} is not known to the {run.api.name}"))
                            return
                    current = (status.found, status.state, status.app_id)
                    if current != last:
                        last, changed_at = current, now
            elif target is PollTarget.EVENT_LOG:
                # Local/client mode with a quiet log: Spark names the event log after the application.
                app_id = await asyncio.to_thread(event_log_app_id, eventlog)
                if app_id and not run.parser.facts.app_id:
                    run.parser.facts.app_id = app_id
                    await run.queue.put(REFRESH)
            if run.url_seen is not None and not run.cluster and run.reported.app_state is None:
                await run.queue.put(REFRESH)  # a UI without an app id yet: RUNNING after APP_ID_WAIT
            if ui is not None and now >= self._details_next and (
                    self.details_task is None or self.details_task.done()):
                # On the same timer, but never waited for: a slow UI does not delay the state.
                self.details_task = asyncio.create_task(self._fetch_details(ui))
            # Fast while launching or after a change, slower while nothing happens (at most poll_max).
            interval = min(run.timings.poll_max, run.timings.poll_min + 0.1 * (time.monotonic() - changed_at))
            run.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.wake.wait(), interval)
            if run.wake.is_set():
                changed_at = time.monotonic()  # a kill or the launcher's exit: look closely again

    # --- details: Spark jobs and stages --------------------------------------------------------

    def _details_ui(self) -> str | None:
        """The running driver's Spark UI (or a proxy to it), if it can be asked now."""
        run = self.run
        if run.finished:
            return None
        if run.cluster:  # YARN: the RM's proxy while the application runs; elsewhere not reachable
            ui = run.facts.ui_url
            return ui if ui and run.reported.app_state == "RUNNING" else None
        if run.launcher_done:
            return None  # client mode: the driver and its UI ended with the launcher
        out = run.parser.facts
        return out.ui_url or out.tracking_url or run.reported.app_url or None

    async def _fetch_details(self, url: str) -> None:
        run = self.run
        session = run.session
        if session is None:
            return
        if run.ui is None or run.ui.base_url != url.rstrip("/"):
            run.ui = SparkUi(url)
        ui = run.ui
        try:
            snapshot = await ui.snapshot(session)
        except DetailsUnavailable:
            self._details_next = time.monotonic() + DETAILS_ACTIVE  # not up yet, or gone: the last one stays
            return
        if not run.cluster and ui.app_id and not (run.parser.facts.app_id or run.facts.app_id):
            run.parser.facts.app_id = ui.app_id  # the UI named the application before the launcher did
            await run.queue.put(REFRESH)
        now = time.monotonic()
        changed = run.live is None or snapshot.steps != run.live.steps
        run.live = snapshot
        self._details_next = now + (DETAILS_ACTIVE if snapshot.active or changed else DETAILS_IDLE)
        shape = [(step["name"], step["state"]) for step in snapshot.steps]
        due = shape != self._sent_shape or now - self._sent_at >= DETAILS_SAVE_EVERY
        if snapshot.steps != run.sent_steps and due:
            self._sent_shape, self._sent_at = shape, now
            await run.queue.put(Details.of(snapshot.steps, snapshot.counters))

    async def final_details(self) -> Details | None:
        """The last snapshot, taken when the driver ended: the event log's if it tells at least as much as
        the driver's UI did (it covers the very end, and runs too short for the UI to be asked)."""
        run = self.run
        if self.details_task is not None:
            self.details_task.cancel()
            await asyncio.gather(self.details_task, return_exceptions=True)
            self.details_task = None
        best = run.live
        if not run.cluster:
            app_id = run.parser.facts.app_id or run.facts.app_id
            limit = EVENT_LOG_MAX_BYTES if best is None else EVENT_LOG_MAX_BYTES_WITH_LIVE
            logged = await asyncio.to_thread(read_event_log, run.workdir / "eventlog", app_id, limit)
            if logged is not None and (best is None or logged.jobs >= best.jobs):
                best = logged
        if best is None or best.steps == run.sent_steps:
            return None
        return Details.of(best.steps, best.counters)
