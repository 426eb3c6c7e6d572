"""The state of one Spark run that its parts share (the event stream in engines/spark_run.py, the poller
in engines/spark_poll.py), and how the facts from spark-submit's output and from the cluster API merge
into what the gateway is told: appId, appUrl, appState and the handle.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from engines.base import AppInfo, BatchFacts, Exited
from engines.process import ProcessRun
from engines.process_handle import ProcessExit, ProcessHandle
from engines.spark_details import Snapshot, SparkUi
from engines.spark_output import LauncherOutput
from engines.spark_state import Kill, LauncherState, SparkExit, SparkFacts, SparkHandle
from engines.spark_status import ClusterApi, ClusterStatus

APP_ID_WAIT = 3.0  # a client-mode driver that shows its UI is RUNNING once it names its app, or after this
_LAUNCHER_REPORTS = {"ACCEPTED": "PENDING", "RUNNING": "RUNNING", "Pending": "PENDING", "Running": "RUNNING"}


@dataclass(frozen=True)
class SparkTimings:
    """How a run polls and how long it waits (the operator's settings)."""

    poll_min: float = 0.25
    poll_max: float = 2.0
    kill_grace: float = 10.0
    lost_after: float = 120.0  # a cluster-mode app unreachable or unknown this long is reported lost
    kill_confirm: float = 30.0  # after a cluster kill, how long to wait for the cluster to confirm it


@dataclass
class Reported:
    """What the gateway has been told."""

    app_id: str | None = None
    app_url: str | None = None
    app_state: str | None = None


class RunContext:
    """One spark-submit, launched or re-attached, and what the cluster says about its app."""

    def __init__(
        self, timings: SparkTimings, *, process: ProcessRun | None, base: ProcessHandle, facts: SparkFacts,
        api: ClusterApi | None, launcher_lost: bool = False, unreported: tuple[str, ...] = (),
    ) -> None:
        self.timings = timings
        self.process = process
        self.base = base  # the launcher process's handle
        self.facts = facts
        self.api = api
        self.cluster = self.facts.cluster
        self.yarn = self.facts.master == "yarn"
        # RUNNING while its process is followed (EXITED after), NONE if there is none to follow.
        self.launcher = LauncherState.RUNNING if process is not None else LauncherState.NONE
        self.launcher_lost = launcher_lost  # recover() found it gone, without an exit status
        self.parser = LauncherOutput()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.wake = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.kill = Kill.NONE
        self.finished = False  # the event stream has ended
        self.api_answered = False
        # What the gateway has been told (a recovered handle's facts were told before; `unreported` ones not).
        self.reported = Reported(*(None if key in unreported else value for key, value in (
            ("appId", facts.app_id), ("appUrl", facts.app_url), ("appState", facts.app_state))))
        self.url_seen: float | None = None  # when the launcher first showed the driver's UI
        # Details: the driver's UI, the latest snapshot and the last one sent.
        self.ui: SparkUi | None = None
        self.live: Snapshot | None = None
        self.sent_steps: list[dict[str, Any]] | None = None

    @property
    def handle(self) -> SparkHandle:
        return SparkHandle.of(self.base, self.facts)

    @property
    def launcher_done(self) -> bool:
        return self.launcher is not LauncherState.RUNNING

    @property
    def workdir(self) -> Path:
        return Path(self.base.workdir or ".")

    @property
    def api_name(self) -> str:
        return self.api.name if self.api else "cluster"

    def identity(self) -> str | None:
        return self.facts.driver_id or self.facts.app_id or self.facts.pod

    # --- merging the facts -----------------------------------------------------------------

    def from_launcher(self) -> AppInfo | None:
        out = self.parser.facts
        facts = self.facts
        facts.driver_id = facts.driver_id or out.driver_id
        facts.pod = facts.pod or out.pod
        facts.namespace = facts.namespace or out.namespace
        if self.cluster or self.yarn:
            # The application runs once the cluster runs it (on YARN: once its AM does, in client mode too);
            # until the cluster API answers, the launcher's reports of the cluster's answers tell.
            app_id = out.app_id or out.driver_id
            state = _LAUNCHER_REPORTS.get(out.yarn_state or out.k8s_phase or "")
            if self.api_answered:
                state = None  # the cluster API knows better than the launcher's last report
            # On YARN appUrl is the RM's tracking URL (a proxy to the driver's UI while it runs).
            return self.report(app_id=app_id, url=out.tracking_url if self.yarn else None, state=state)
        url = out.ui_url or out.tracking_url
        if url and self.url_seen is None:
            self.url_seen = time.monotonic()
        # The driver is up once it names its application. Its UI shows up a moment earlier (then the
        # poller asks the UI for the id); a UI without an id still counts after APP_ID_WAIT, or at the end.
        named = bool(out.app_id) or (self.url_seen is not None and (
            self.launcher_done or time.monotonic() - self.url_seen >= APP_ID_WAIT))
        running = named and not self.api_answered  # a cluster API that answered knows better
        return self.report(app_id=out.app_id, url=url, state="RUNNING" if running else None)

    def from_cluster(self, status: ClusterStatus) -> AppInfo | None:
        if not status.found:
            return None
        self.api_answered = True
        self.facts.update(status.ids)
        if self.cluster:
            if status.app_id and status.app_id.startswith("driver-"):
                self.facts.driver_id = status.app_id
            # where the running driver's UI is reachable (YARN: the RM's proxy)
            self.facts.ui_url = status.ui_url or None
            return self.report(app_id=status.app_id, url=status.app_url, state=status.state)
        # Client mode: the launcher owns the driver's UI URL and the end; the cluster adds its state.
        url = status.app_url if self.yarn or not self.reported.app_url else None
        return self.report(app_id=status.app_id, url=url, state=None if status.terminal else status.state)

    def report(self, *, app_id: str | None, url: str | None = None, state: str | None = None) -> AppInfo | None:
        told, facts = self.reported, self.facts
        new_id = app_id if app_id and app_id != told.app_id else None
        new_url = url if url and url != told.app_url else None
        new_state = state if state and state != told.app_state else None
        if not (new_id or new_url or new_state):
            return None
        if new_id:
            told.app_id = facts.app_id = new_id
        if new_url:
            told.app_url = facts.app_url = new_url
        if new_state:
            told.app_state = facts.app_state = new_state
        running = new_state == "RUNNING"
        # A change of state alone still names the application it is about (the batch.running log line).
        return AppInfo(app_id=new_id or (told.app_id if running else None), app_url=new_url, app_state=new_state,
                       running=running, handle=self.handle)

    def exited(self, app_state: str, diagnostic: str | None, launcher: BatchFacts | None = None) -> Exited:
        """The end, with spark-submit's as the runner recorded it (`launcher`: its Exited.info)."""
        ended = ProcessExit.parse(launcher) if launcher is not None else None
        return Exited(app_state, diagnostic, SparkExit(facts=self.facts, launcher=ended))

    def ended_by_cluster(self, status: ClusterStatus) -> str | None:
        if status.state == "FINISHED":
            return None
        api = self.api.name if self.api else "the cluster"
        return f"{api} reports the application {status.state}"
