"""SPARK and PYSPARK: spark-submit under the detached runner; facts from its output and the cluster APIs.

Which source decides that an application ended depends on where its driver runs:
- client deploy mode (and local masters): the driver is the launcher, so the launcher's exit is the end
  (seen at once through the runner's pidfd); a cluster API only adds the application's state;
- cluster deploy mode: the application outlives spark-submit, so the cluster API decides (standalone
  REST server / master JSON, YARN ResourceManager, Kubernetes driver pod), polled on an interval that
  starts fast and slows down while nothing changes.

Details (Spark jobs and stages) come from the driver's REST API on the same timer while the driver's UI
is reachable, and from the event log in the batch's dir once a client-mode driver has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from engines.base import (
    AppInfo,
    Details,
    EngineError,
    Event,
    Exited,
    InvalidRequest,
    LaunchSpec,
    LogLines,
    Note,
)
from engines.process import ProcessRun, ProcessSupervisor, read_pids
from engines.runner import EXIT
from engines.spark_details import (
    EVENT_LOG_MAX_BYTES,
    EVENT_LOG_MAX_BYTES_WITH_LIVE,
    DetailsUnavailable,
    Snapshot,
    SparkUi,
    read_event_log,
)
from engines.spark_launcher import LauncherJvm, submit_in_jvm
from engines.spark_status import (
    IN_CLUSTER_CA,
    IN_CLUSTER_TOKEN,
    ClusterApi,
    ClusterStatus,
    K8sApi,
    StandaloneApi,
    StatusUnavailable,
    YarnApi,
)
from engines.spark_submit import (
    REST_ENABLED_CONF,
    SPARK_TYPES,
    LauncherOutput,
    Master,
    SparkSubmit,
    SubmitConfig,
    event_log_app_id,
    parse_master,
)
from engines.yarn import am_log_events, rm_urls_from_site


@dataclass(frozen=True)
class SparkConfig:
    """The operator's Spark settings, handed over by the gateway."""

    spark_home: Path | None = None
    default_master: str = "local[*]"
    allowed_masters: tuple[str, ...] = ()  # prefixes a batch's spark.master must start with; empty: any
    master_web_urls: dict[str, str] = field(default_factory=dict)  # spark://h:7077 -> http://h:8080
    rest_port: int = 6066  # the standalone REST submission server
    yarn_rm_urls: tuple[str, ...] = ()  # empty: from yarn-site.xml in YARN_CONF_DIR / HADOOP_CONF_DIR
    k8s_namespace: str = "default"
    k8s_token_file: Path | None = None
    k8s_ca_file: Path | None = None
    poll_min: float = 0.25
    poll_max: float = 2.0
    kill_grace: float = 10.0
    lost_after: float = 120.0  # a cluster-mode app unreachable or unknown this long is reported lost
    kill_confirm: float = 30.0  # after a cluster kill, how long to wait for the cluster to confirm it
    # Who submits cluster-mode applications to YARN: "process" (a spark-submit per batch) or "jvm" (one
    # long-lived JVM, engines/spark_launcher.py, with the process as the fallback), its folder and how
    # many submissions it runs at once.
    launcher: str = "process"
    launcher_dir: Path | None = None
    launcher_parallel: int = 4


KILL_NOTE_WAIT = 6.0  # seconds the end waits for a kill request in flight, so that its note is kept
APP_ID_WAIT = 3.0  # a client-mode driver that shows its UI is RUNNING once it names its app, or after this
# Details from the driver's UI: asked at most every DETAILS_ACTIVE seconds while a job or stage runs (or
# something changed), every DETAILS_IDLE seconds otherwise; a snapshot is saved when a job or stage
# appears or changes state, else at most every DETAILS_SAVE_EVERY seconds.
DETAILS_ACTIVE = 1.0
DETAILS_IDLE = 5.0
DETAILS_SAVE_EVERY = 5.0
PAUSE_REFUSAL = "Spark cannot suspend a running application (it has no savepoints); kill it and restart it instead"


class SparkRun:
    """One spark-submit, launched or re-attached, merged with what the cluster says about its app."""

    def __init__(
        self, config: SparkConfig, *, process: ProcessRun | None, handle: dict[str, Any],
        api: ClusterApi | None, notes: list[str], launcher_lost: bool = False, unreported: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self._process = process
        self._base = {k: v for k, v in handle.items() if k != "spark"}
        self._info: dict[str, Any] = dict(handle.get("spark") or {})
        self._api = api
        self._cluster = self._info.get("deployMode") == "cluster"
        self._yarn = self._info.get("master") == "yarn"
        # In cluster mode spark-submit may return once the application is submitted: its exit is no end.
        self._launcher_waits = bool(self._info.get("launcherWaits", True))
        self._notes = notes
        self._launcher_lost = launcher_lost
        self._parser = LauncherOutput()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._output_room = asyncio.Semaphore(16)  # back-pressure on the launcher's output
        self._wake = asyncio.Event()
        self._detached = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._launcher_done = process is None
        self._kill_requested = False
        self._kill_sent = asyncio.Event()  # clear while a kill request to the cluster is in flight
        self._kill_sent.set()
        self._api_kill_sent = False
        self._finished = False
        self._api_answered = False
        # What the gateway has been told (a recovered handle's facts were told before; `unreported` ones not).
        self._reported: dict[str, Any] = {k: self._info.get(k) for k in ("appId", "appUrl", "appState")
                                          if k not in unreported}
        self._url_seen: float | None = None  # when the launcher first showed the driver's UI
        # Details: the driver's UI, the fetch in flight, the latest snapshot and the last one sent.
        self._ui: SparkUi | None = None
        self._details_task: asyncio.Task[None] | None = None
        self._details_next = 0.0
        self._live: Snapshot | None = None
        self._sent_steps: list[dict[str, Any]] | None = None
        self._sent_shape: list[tuple[Any, ...]] | None = None
        self._sent_at = 0.0

    @property
    def handle(self) -> dict[str, Any]:
        return {**self._base, "spark": dict(self._info)}

    # --- the event stream ----------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        for text in self._notes:
            yield Note(text)
        final: Exited | None = None
        async with aiohttp.ClientSession() as session:
            self._session = session
            if self._process is not None:
                self._tasks.append(asyncio.create_task(self._pump(self._process)))
            self._tasks.append(asyncio.create_task(self._poll()))
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
                    while not self._queue.empty():
                        if isinstance(item := self._queue.get_nowait(), Note | LogLines):
                            yield item
            finally:
                self._finished = True
                await decide.aclose()
                await self._stop_tasks()
                self._session = None
        if final is not None:
            yield final  # after the session and the watchers are closed: the consumer may stop here

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        if self._details_task is not None:
            tasks.append(self._details_task)
            self._details_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, process: ProcessRun) -> None:
        async for event in process.output():
            await self._output_room.acquire()
            await self._queue.put(event)

    async def _next(self) -> Any:
        getter = asyncio.ensure_future(self._queue.get())
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
        while True:
            item = await self._next()
            if item is None:
                return  # detached: leave the application running
            if isinstance(item, LogLines):
                self._output_room.release()
                self._parser.feed(item.lines)
                yield item
                if info := self._from_launcher():
                    yield info
            elif isinstance(item, Exited) and not isinstance(item, _Final):
                self._output_room.release()
                self._launcher_done = True
                self._wake.set()
                if info := self._from_launcher():
                    yield info
                final = await self._launcher_ended(item)
                if final is not None:
                    if (details := await self._final_details()) is not None:
                        yield details  # before the end: the supervisor stops reading at Exited
                    yield final
                    return
            elif isinstance(item, ClusterStatus):
                if info := self._from_cluster(item):
                    yield info
                if item.found and self._kill_requested and self._cluster and not self._api_kill_sent:
                    # Killed while spark-submit was still submitting: the application showed up since.
                    self._api_kill_sent = True
                    self._tasks.append(asyncio.create_task(self._kill_through_api()))
                if self._cluster and item.terminal:
                    am_log = await self._am_log()
                    for event in am_log:
                        yield event
                    if (details := await self._final_details()) is not None:
                        yield details
                    diagnostic = item.diagnostic or self._ended_by_cluster(item)
                    if item.state == "FAILED" and (cause := _telling_line(am_log)):
                        diagnostic = f"{cause} ({self._api.name if self._api else 'cluster'}: {diagnostic})"
                    yield self._exited(item.state or "FAILED", diagnostic)
                    return
            elif isinstance(item, _Final):
                if (details := await self._final_details()) is not None:
                    yield details
                yield self._exited(item.app_state, item.diagnostic)
                return
            elif isinstance(item, Note):
                yield item
            elif isinstance(item, Details):
                self._sent_steps = item.steps
                yield item
            elif item is _REFRESH and (info := self._from_launcher()):
                yield info

    # --- facts ---------------------------------------------------------------------------------

    def _from_launcher(self) -> AppInfo | None:
        facts = self._parser.facts
        for key, value in (("driverId", facts.driver_id), ("pod", facts.pod), ("namespace", facts.namespace)):
            if value and not self._info.get(key):
                self._info[key] = value
        if self._cluster or self._yarn:
            # The application runs once the cluster runs it (on YARN: once its AM does, in client mode too);
            # until the cluster API answers, the launcher's reports of the cluster's answers tell.
            app_id = facts.app_id or facts.driver_id
            state = _LAUNCHER_REPORTS.get(facts.yarn_state or facts.k8s_phase or "")
            if self._api_answered:
                state = None  # the cluster API knows better than the launcher's last report
            # On YARN appUrl is the RM's tracking URL (a proxy to the driver's UI while it runs).
            return self._report(app_id=app_id, url=facts.tracking_url if self._yarn else None, state=state)
        url = facts.ui_url or facts.tracking_url
        if url and self._url_seen is None:
            self._url_seen = time.monotonic()
        # The driver is up once it names its application. Its UI shows up a moment earlier (then the
        # poller asks the UI for the id); a UI without an id still counts after APP_ID_WAIT, or at the end.
        named = bool(facts.app_id) or (self._url_seen is not None and (
            self._launcher_done or time.monotonic() - self._url_seen >= APP_ID_WAIT))
        running = named and not self._api_answered  # a cluster API that answered knows better
        return self._report(app_id=facts.app_id, url=url, state="RUNNING" if running else None)

    def _from_cluster(self, status: ClusterStatus) -> AppInfo | None:
        if not status.found:
            return None
        self._api_answered = True
        self._info.update(status.ids)
        if self._cluster:
            if status.app_id and status.app_id.startswith("driver-"):
                self._info["driverId"] = status.app_id
            if status.ui_url:  # where the running driver's UI is reachable (YARN: the RM's proxy)
                self._info["uiUrl"] = status.ui_url
            else:
                self._info.pop("uiUrl", None)
            return self._report(app_id=status.app_id, url=status.app_url, state=status.state)
        # Client mode: the launcher owns the driver's UI URL and the end; the cluster adds its state.
        url = status.app_url if self._yarn or not self._reported.get("appUrl") else None
        return self._report(app_id=status.app_id, url=url, state=None if status.terminal else status.state)

    def _report(self, *, app_id: str | None, url: str | None = None, state: str | None = None) -> AppInfo | None:
        changes = {k: v for k, v in (("appId", app_id), ("appUrl", url), ("appState", state))
                   if v and v != self._reported.get(k)}
        if not changes:
            return None
        self._reported.update(changes)
        self._info.update(changes)
        running = changes.get("appState") == "RUNNING"
        # A change of state alone still names the application it is about (the batch.running log line).
        app_id = changes.get("appId") or (self._reported.get("appId") if running else None)
        return AppInfo(
            app_id=app_id, app_url=changes.get("appUrl"), app_state=changes.get("appState"),
            running=running, handle=self.handle,
        )

    def _identity(self) -> str | None:
        return self._info.get("driverId") or self._info.get("appId") or self._info.get("pod")

    def _exited(self, app_state: str, diagnostic: str | None, launcher: dict[str, Any] | None = None) -> Exited:
        info = {k: v for k, v in self._info.items() if v is not None and k != "appState"}
        if launcher:
            info["launcher"] = launcher
        return Exited(app_state, diagnostic, {"spark": info})

    def _ended_by_cluster(self, status: ClusterStatus) -> str | None:
        if status.state == "FINISHED":
            return None
        api = self._api.name if self._api else "the cluster"
        return f"{api} reports the application {status.state}"

    async def _am_log(self) -> list[Note | LogLines]:
        """YARN cluster mode: the application master's (the driver's) log, once the application ended."""
        if not isinstance(self._api, YarnApi) or self._api.last is None or self._session is None:
            return []
        return await am_log_events(self._api.rm, self._session, self._api.last)

    async def _launcher_ended(self, exited: Exited) -> Exited | None:
        """The launcher is gone. The end of the batch, or None if the application lives on in the cluster."""
        if not self._cluster:
            return self._from_launcher_exit(exited)
        if self._api is None:
            # No cluster API to ask: spark-submit waited for the application, so its exit tells the end.
            return self._from_launcher_exit(exited)
        if self._yarn and not self._launcher_waits and exited.app_state == "FINISHED" and self._identity():
            await self._queue.put(Note(
                f"spark-submit returned once YARN had {self._identity()} (spark.yarn.submit.waitAppCompletion="
                "false); the ResourceManager tells the rest"))
        if not self._api_answered and self._session is not None:
            with contextlib.suppress(StatusUnavailable):
                status = await self._api.status(self._session, self._info)
                if status.found:
                    await self._queue.put(status)
                    return None  # keep following the application through the cluster API
        # A standalone cluster-mode spark-submit never waits for its application; on YARN it may not.
        submits_only = isinstance(self._api, StandaloneApi) or not self._launcher_waits
        if self._identity() is not None:
            if self._api_answered or self._launcher_lost or submits_only:
                return None
            # The cluster API does not know the application spark-submit waited for: trust spark-submit.
            return self._from_launcher_exit(exited)
        if self._kill_requested:
            return self._exited("KILLED", "killed before the application was submitted", exited.info)
        if exited.app_state == "FINISHED" and submits_only:
            # It returns right after submitting: without an id there is nothing to follow.
            what = "driver" if isinstance(self._api, StandaloneApi) else "application"
            return self._exited("FAILED", f"spark-submit ended without naming the {what} it submitted",
                                exited.info)
        return self._from_launcher_exit(exited)

    def _from_launcher_exit(self, exited: Exited) -> Exited:
        diagnostic = exited.diagnostic
        if exited.app_state == "FAILED":
            if self._launcher_lost and not self._cluster:
                app = self._info.get("appId") or "the application"
                diagnostic = (f"{app} was lost: its launcher (spark-submit) ended while the gateway was away "
                              "and left no exit status; in client mode the driver runs inside the launcher")
            elif self._parser.diagnostic:
                diagnostic = f"{self._parser.diagnostic} (spark-submit {exited.diagnostic or 'failed'})"
        return self._exited(exited.app_state, diagnostic, exited.info)

    # --- polling where no event exists ---------------------------------------------------------

    def _poll_target(self, eventlog: Path) -> str | None:
        """What to poll next: "api", "eventlog", "wait" (nothing yet), or None (nothing ever again)."""
        if self._cluster:
            return "api" if self._api is not None else None
        if self._launcher_done:
            return None  # client mode: the launcher's exit has decided
        known = bool(self._parser.facts.app_id or self._info.get("appId"))
        if self._api is not None and (known or not isinstance(self._api, StandaloneApi)):
            return "api"  # a standalone master is asked by app id; YARN finds the app by its tag
        if not known:
            return "eventlog"
        return "wait"  # the driver's UI may still be asked for details while the launcher runs

    async def _poll(self) -> None:
        assert self._session is not None
        eventlog = Path(self._base.get("workdir", ".")) / "eventlog"
        outage_since: float | None = None
        missing_since: float | None = None
        changed_at = time.monotonic()
        last: tuple[Any, ...] = ()
        while True:
            target, ui = self._poll_target(eventlog), self._details_ui()
            if target is None and ui is None:
                return
            now = time.monotonic()
            if target == "api":
                assert self._api is not None
                try:
                    status = await self._api.status(self._session, self._info)
                except StatusUnavailable as exc:
                    if outage_since is None:
                        outage_since = now
                        await self._queue.put(Note(f"{self._api.name} did not answer: {exc}; retrying"))
                    if self._cluster and self._launcher_done and now - outage_since > self._config.lost_after:
                        await self._queue.put(_Final("FAILED", f"lost contact with the {self._api.name} for "
                                                               f"{self._config.lost_after:.0f}s: {exc}"))
                        return
                else:
                    if outage_since is not None:
                        await self._queue.put(Note(f"{self._api.name} answers again"))
                    outage_since = None
                    await self._queue.put(status)
                    if status.terminal and self._cluster:
                        return
                    missing_since = None if status.found else (missing_since or now)
                    if self._cluster and missing_since is not None and self._launcher_done:
                        if self._kill_requested and self._identity() is not None:
                            await self._queue.put(_Final("KILLED", "killed on request; the application is gone"))
                            return
                        if now - missing_since > self._config.lost_after:
                            what = self._identity() or "the application"
                            await self._queue.put(_Final("FAILED", f"{what} is not known to the {self._api.name}"))
                            return
                    current = (status.found, status.state, status.app_id)
                    if current != last:
                        last, changed_at = current, now
            elif target == "eventlog":
                # Local/client mode with a quiet log: Spark names the event log after the application.
                app_id = await asyncio.to_thread(event_log_app_id, eventlog)
                if app_id and not self._parser.facts.app_id:
                    self._parser.facts.app_id = app_id
                    await self._queue.put(_REFRESH)
            if self._url_seen is not None and not self._cluster and self._reported.get("appState") is None:
                await self._queue.put(_REFRESH)  # a UI without an app id yet: RUNNING after APP_ID_WAIT
            if ui is not None and now >= self._details_next and (
                    self._details_task is None or self._details_task.done()):
                # On the same timer, but never waited for: a slow UI does not delay the state.
                self._details_task = asyncio.create_task(self._fetch_details(ui))
            # Fast while launching or after a change, slower while nothing happens (at most poll_max).
            interval = min(self._config.poll_max, self._config.poll_min + 0.1 * (time.monotonic() - changed_at))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            if self._wake.is_set():
                changed_at = time.monotonic()  # a kill or the launcher's exit: look closely again

    # --- details: Spark jobs and stages --------------------------------------------------------

    def _details_ui(self) -> str | None:
        """The running driver's Spark UI (or a proxy to it), if it can be asked now."""
        if self._finished:
            return None
        if self._cluster:  # YARN: the RM's proxy while the application runs; elsewhere not reachable
            ui = self._info.get("uiUrl")
            return str(ui) if ui and self._reported.get("appState") == "RUNNING" else None
        if self._launcher_done:
            return None  # client mode: the driver and its UI ended with the launcher
        facts = self._parser.facts
        url = facts.ui_url or facts.tracking_url or self._reported.get("appUrl")
        return str(url) if url else None

    async def _fetch_details(self, url: str) -> None:
        session = self._session
        if session is None:
            return
        if self._ui is None or self._ui.base_url != url.rstrip("/"):
            self._ui = SparkUi(url)
        ui = self._ui
        try:
            snapshot = await ui.snapshot(session)
        except DetailsUnavailable:
            self._details_next = time.monotonic() + DETAILS_ACTIVE  # not up yet, or gone: the last one stays
            return
        if not self._cluster and ui.app_id and not (self._parser.facts.app_id or self._info.get("appId")):
            self._parser.facts.app_id = ui.app_id  # the UI named the application before the launcher did
            await self._queue.put(_REFRESH)
        now = time.monotonic()
        changed = self._live is None or snapshot.steps != self._live.steps
        self._live = snapshot
        self._details_next = now + (DETAILS_ACTIVE if snapshot.active or changed else DETAILS_IDLE)
        shape = [(step["name"], step["state"]) for step in snapshot.steps]
        due = shape != self._sent_shape or now - self._sent_at >= DETAILS_SAVE_EVERY
        if snapshot.steps != self._sent_steps and due:
            self._sent_shape, self._sent_at = shape, now
            await self._queue.put(Details(steps=snapshot.steps, counters=snapshot.counters))

    async def _final_details(self) -> Details | None:
        """The last snapshot, taken when the driver ended: the event log's if it tells at least as much as
        the driver's UI did (it covers the very end, and runs too short for the UI to be asked)."""
        if self._details_task is not None:
            self._details_task.cancel()
            await asyncio.gather(self._details_task, return_exceptions=True)
            self._details_task = None
        best = self._live
        if not self._cluster:
            app_id = self._parser.facts.app_id or self._info.get("appId")
            eventlog = Path(self._base.get("workdir", ".")) / "eventlog"
            limit = EVENT_LOG_MAX_BYTES if best is None else EVENT_LOG_MAX_BYTES_WITH_LIVE
            logged = await asyncio.to_thread(read_event_log, eventlog, app_id, limit)
            if logged is not None and (best is None or logged.jobs >= best.jobs):
                best = logged
        if best is None or best.steps == self._sent_steps:
            return None
        return Details(steps=best.steps, counters=best.counters)

    # --- control -------------------------------------------------------------------------------

    async def kill(self) -> None:
        self._kill_requested = True
        self._wake.set()
        if self._cluster and self._api is not None:
            await self._kill_through_api()
            if self._session is not None and not self._finished:  # only while events() is followed
                self._tasks.append(asyncio.create_task(self._confirm_kill()))
        elif self._yarn and self._api is not None:
            # Client mode: the driver dies with the launcher, but YARN would record a driver that stops on
            # SIGTERM as a success; the RM records the kill. The launcher's exit is the end, as ever.
            await self._kill_through_api()
        if self._process is not None and not self._launcher_done:
            await self._process.terminate(self._config.kill_grace)

    async def _kill_through_api(self) -> None:
        """Ask the cluster to kill the application (once it is known: until then, nothing to ask)."""
        assert self._api is not None
        self._kill_sent.clear()
        try:
            await self._ask_api_to_kill(self._api)
        finally:
            self._kill_sent.set()

    async def _ask_api_to_kill(self, api: ClusterApi) -> None:
        try:
            if self._session is not None:
                text = await api.kill(self._session, self._info)
            else:
                async with aiohttp.ClientSession() as session:
                    text = await api.kill(session, self._info)
        except StatusUnavailable as exc:
            await self._queue.put(Note(f"kill through the {api.name} failed: {exc}"))
            return
        if text:
            self._api_kill_sent = True
            await self._queue.put(Note(text))

    async def _confirm_kill(self) -> None:
        await asyncio.sleep(self._config.kill_confirm)
        api = self._api.name if self._api else "cluster"
        await self._queue.put(_Final("KILLED", f"kill requested; the {api} did not confirm the end within "
                                               f"{self._config.kill_confirm:.0f}s"))

    async def detach(self) -> None:
        if self._process is not None:
            self._process.detach()
        self._detached.set()


_LAUNCHER_REPORTS = {"ACCEPTED": "PENDING", "RUNNING": "RUNNING", "Pending": "PENDING", "Running": "RUNNING"}


def _telling_line(events: list[Note | LogLines]) -> str | None:
    """The most telling line of a driver's log (its exception), as of spark-submit's output."""
    parser = LauncherOutput()
    for event in events:
        if isinstance(event, LogLines):
            parser.feed(event.lines)
    return parser.diagnostic


class _Final(Exited):
    """The run's own decision that the application ended (not the launcher's exit)."""


_REFRESH = object()  # the poller learned a launcher fact (the app id from the event log)


class SparkEngine:
    batch_types = SPARK_TYPES

    def __init__(self, supervisor: ProcessSupervisor, config: SparkConfig) -> None:
        self._sup = supervisor
        self.config = config
        self._yarn_rm = list(config.yarn_rm_urls) or rm_urls_from_site(os.environ)
        self.builder = SparkSubmit(SubmitConfig(
            spark_home=config.spark_home, default_master=config.default_master,
            allowed_masters=config.allowed_masters, python=supervisor.python, yarn_followed=bool(self._yarn_rm),
        ))
        self.jvm: LauncherJvm | None = None
        if config.launcher == "jvm" and self.builder.spark_home is not None and config.launcher_dir is not None:
            self.jvm = LauncherJvm(self.builder.spark_home.resolve(), config.launcher_dir, python=supervisor.python,
                                   parallel=config.launcher_parallel)

    async def close(self) -> None:
        if self.jvm is not None:
            await self.jvm.close()

    def validate(self, spec: LaunchSpec) -> None:
        self.builder.validate(spec)

    def pause_refusal(self, spec: LaunchSpec) -> str | None:
        """Why a running SPARK/PYSPARK batch cannot be paused (a queued one is held by the gateway)."""
        return PAUSE_REFUSAL

    async def submit(self, spec: LaunchSpec) -> SparkRun:
        try:
            plan = self.builder.plan(spec)
        except InvalidRequest as exc:  # e.g. the resource vanished between submit and launch
            raise EngineError(str(exc)) from None

        def make_dirs() -> None:
            for directory in plan.make_dirs:
                directory.mkdir(parents=True, exist_ok=True)

        try:
            await asyncio.to_thread(make_dirs)
        except OSError as exc:
            raise EngineError(f"cannot prepare the batch's working dir: {exc}") from None
        info: dict[str, Any] = {"batchId": spec.batch_id, "master": plan.master.url,
                                "deployMode": plan.deploy_mode, "launcherWaits": plan.launcher_waits,
                                "restSubmission": spec.conf.get(REST_ENABLED_CONF, "").lower() == "true"}
        if plan.master.kind == "k8s":
            info["namespace"] = spec.conf.get("spark.kubernetes.namespace") or self.config.k8s_namespace
        notes = []
        if plan.ignored_conf:
            notes.append(f"conf not passed to Spark (not spark.* keys): {', '.join(sorted(plan.ignored_conf))}")
        api = self.cluster_api(plan.master, info)
        if plan.cluster_mode and api is None:
            notes.append("no cluster API configured for this master: the state comes from spark-submit alone")
        before: list[str] = []  # what the long-lived launcher did, when it did not submit it
        if self.jvm is not None and isinstance(api, YarnApi) and plan.cluster_mode and not plan.launcher_waits:
            app_id, before = await submit_in_jvm(self.jvm, plan, spec.workdir, api, info)
            if app_id is not None:
                info.update(appId=app_id, launcher="jvm")
                return SparkRun(self.config, process=None, handle={"workdir": str(spec.workdir), "spark": info},
                                api=api, notes=[*before, *notes], unreported=("appId",))
        process = await self._sup.launch(plan.argv, spec.workdir, plan.env)
        return SparkRun(self.config, process=process, handle={**process.handle, "spark": info}, api=api,
                        notes=[*before, f"launching: {plan.display}", *notes])

    async def recover(self, spec: LaunchSpec, handle: dict[str, Any], offset: int) -> SparkRun | None:
        info = dict(handle.get("spark") or {})
        info.setdefault("batchId", spec.batch_id)
        info.setdefault("master", self.builder.master_of(spec))
        info.setdefault("deployMode", self.builder.deploy_mode_of(spec))
        try:
            master = parse_master(info["master"])
        except ValueError:
            return None
        if "runner_pid" not in handle and "workdir" in handle:
            # Launched, but the gateway stopped before it stored the handle: the runner left its pids.
            pids = read_pids(Path(handle["workdir"]))
            if pids:
                handle = {**handle, "runner_pid": pids["runner"], "child_pid": pids["child"]}
        launcher = launcher_state(handle)
        process = self._sup.attach(handle, offset) if launcher != "none" else None
        api = self.cluster_api(master, info)
        if process is None and info["deployMode"] != "cluster":
            return None  # a client-mode driver with no launcher to follow: lost
        notes = []
        if launcher == "gone" and info["deployMode"] == "cluster":
            notes.append("spark-submit is gone; following the application through the cluster API")
        return SparkRun(self.config, process=process, handle={**handle, "spark": info}, api=api, notes=notes,
                        launcher_lost=launcher == "gone")

    def cluster_api(self, master: Master, info: dict[str, Any]) -> ClusterApi | None:
        cluster = info.get("deployMode") == "cluster"
        batch_id = str(info["batchId"])
        if master.kind == "standalone":
            configured = self.config.master_web_urls.get(master.url.rstrip("/"))
            web = [configured] if configured else [f"http://{h}:8080" for h, _ in master.hosts]
            rest: list[str] = []
            for host, port in master.hosts:
                if info.get("restSubmission"):
                    rest.append(f"http://{host}:{port}")
                rest.append(f"http://{host}:{self.config.rest_port}")
            return StandaloneApi(master, web_urls=web, rest_urls=list(dict.fromkeys(rest)), cluster=cluster)
        if master.kind == "yarn" and self._yarn_rm:
            return YarnApi(self._yarn_rm, batch_id=batch_id, cluster=cluster)
        if master.kind == "k8s" and cluster and master.api_url:
            token = self.config.k8s_token_file or (IN_CLUSTER_TOKEN if IN_CLUSTER_TOKEN.exists() else None)
            ca = self.config.k8s_ca_file or (IN_CLUSTER_CA if IN_CLUSTER_CA.exists() else None)
            namespace = str(info.get("namespace") or self.config.k8s_namespace)
            return K8sApi(master.api_url, batch_id=batch_id, namespace=namespace, token_file=token, ca_file=ca)
        return None


def launcher_state(handle: dict[str, Any]) -> str:
    """none (never launched here), exited (its exit status is recorded), running, or gone (no status)."""
    if "runner_pid" not in handle or "workdir" not in handle:
        return "none"
    if (Path(handle["workdir"]) / EXIT).exists():
        return "exited"
    try:
        fields = Path(f"/proc/{handle['runner_pid']}/stat").read_text().rsplit(")", 1)[1].split()
        state, ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return "gone"
    started = handle.get("runner_start")
    return "running" if state not in "ZX" and (started is None or ticks == started) else "gone"


__all__ = ["SparkConfig", "SparkEngine", "SparkRun"]
