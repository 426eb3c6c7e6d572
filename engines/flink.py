"""FLINK and PYFLINK: `flink run` on the local mini cluster, a session cluster or an application cluster.

appId is the Flink JobID. With the local target the mini cluster lives in the launcher process, so the
process is the source of truth: its output is the log and its exit is the end. With a cluster target
the launcher runs detached and exits once the job is submitted; from then on the job's state comes
from the cluster's REST API (/jobs/{id}), read at an interval that starts fast and slows as the job
ages, and is fast again while the job is in a transitional state or being canceled.

On a session cluster (target remote) a running batch can be paused: its job is stopped with a
savepoint, and a resume runs the same `flink run` again with `-s <savepoint>`, which submits a new job
(the new appId; every JobID so far is kept). The handle records the pause, so that a gateway restart
re-attaches to a paused batch and leaves it paused.

Details: the vertices of the job(s) with records and bytes in and out, read from the same REST answer
the state comes from (on the local target from the mini cluster's REST API while the launcher runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import structlog

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
    NotSupported,
)
from engines.flink_cli import (
    CONF_YARN_APPLICATION_ID,
    LOCAL,
    YARN_APPLICATION,
    YARN_SESSION,
    OutputScanner,
    Target,
    build_argv,
    check_request,
    check_resource,
    choose_target,
    default_flink_home,
    display_argv,
    fixed_job_id,
    flink_conf,
    free_port,
    launch_env,
    local_rest_url,
    resume_argv,
    savepoint_dir,
)
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
    detail_counters,
    job_url,
    latest_failure,
    overall_state,
    poll_interval,
    vertex_steps,
)
from engines.flink_yarn import FlinkYarn, rest_url_of, session_rest_url
from engines.process import ProcessRun, ProcessSupervisor, clean_env
from engines.runner import EXIT, OUTPUT
from engines.yarn import ResourceManager, RmUnavailable, YarnApp, rm_urls_from_site

log = structlog.get_logger("engines.flink")

CANCEL_RETRY_SECONDS = 5.0
DETAILS_INTERVAL = 5.0  # at most one Details snapshot per this many seconds while a job runs (and its end)
LOCAL_DETAILS_FASTEST = 0.5  # the local mini cluster's REST API is read no more often than this
LOCAL_REST_TIMEOUT = 2.0  # a local REST read must not hold up the launcher's output for long
LAUNCHER_SETTLE_SECONDS = 30.0  # a pause waits this long for a detached launcher to exit
SAVEPOINT_TIMEOUT = 300.0  # a stop with a savepoint that takes longer is given up (Flink may still finish it)
STOP_WAIT_SECONDS = 30.0  # after the savepoint, how long to wait for the job to turn FINISHED
HANDLE_SAVE_SECONDS = 15.0  # how long a pause or resume waits for its handle to be in the database
SAVEPOINT_POLL_SECONDS = 0.25
TASKS_WAIT_SECONDS = 60.0  # how long a pause waits for the job's tasks to run before it asks anyway
SAVEPOINT_ATTEMPTS = 3  # a savepoint refused because tasks were not running yet is asked for again
_TASKS_NOT_READY = "Not all required tasks are currently running"
ORPHANED_PAUSE_SECONDS = 120.0  # a recovered, half-done pause that no pause request picks up is dropped

LOCAL_PAUSE_REFUSAL = ("the local mini cluster cannot take a savepoint that outlives it; run on a session "
                       "cluster to pause")
APPLICATION_PAUSE_REFUSAL = ("an application cluster exists for one job only; run on a session cluster "
                             "(target remote) to pause")


class ResumeFailed(Exception):
    """`flink run -s <savepoint>` did not submit a job; the batch stays paused."""


class FlinkEngine:
    batch_types = frozenset({"FLINK", "PYFLINK"})

    def __init__(
        self,
        supervisor: ProcessSupervisor,
        *,
        home: Path | None = None,
        default_target: str = LOCAL,
        default_jobmanager: str | None = None,
        poll_fastest: float = 0.25,
        poll_slowest: float = 2.0,
        lost_after: float = 300.0,
        kill_grace: float = 10.0,
        rest_timeout: float = 10.0,
        yarn_rm_urls: tuple[str, ...] = (),
    ) -> None:
        self._sup = supervisor
        urls = list(yarn_rm_urls) or rm_urls_from_site(os.environ)
        self.rm = ResourceManager(urls) if urls else None  # yarn-application and yarn-session batches
        self.home = home or default_flink_home()
        self.default_target = default_target
        self.default_jobmanager = default_jobmanager
        self.poll_fastest = poll_fastest
        self.poll_slowest = poll_slowest
        self.lost_after = lost_after
        self.kill_grace = kill_grace
        self.rest_timeout = rest_timeout

    @property
    def supervisor(self) -> ProcessSupervisor:
        return self._sup

    async def _session_rest_url(self, app_id: str) -> str:
        """The REST address of the Flink session on YARN that a yarn-session batch names."""
        if self.rm is None:
            raise EngineError(f"target {YARN_SESSION} needs the YARN ResourceManager's address: set "
                              "BATCHGATE_FLINK_YARN_RM_URLS, or HADOOP_CONF_DIR with a yarn-site.xml")
        try:
            return await session_rest_url(self.rm, app_id)
        except (ValueError, RmUnavailable) as exc:
            raise EngineError(f"cannot submit to the Flink session {app_id}: {exc}") from None

    def yarn(self, batch_id: str, target: str) -> FlinkYarn | None:
        """The ResourceManager for a yarn-application batch, if the gateway knows it."""
        if target != YARN_APPLICATION or self.rm is None:
            return None
        return FlinkYarn(self.rm, batch_id)

    def target(self, spec: LaunchSpec) -> Target:
        return choose_target(spec.conf, self.default_target, self.default_jobmanager)

    def validate(self, spec: LaunchSpec) -> None:
        check_request(spec)
        check_resource(spec, self.target(spec))

    def pause_refusal(self, spec: LaunchSpec) -> str | None:
        """Only a job on a session cluster can be stopped with a savepoint and started again from it."""
        try:
            target = self.target(spec)
        except InvalidRequest as exc:
            return str(exc)
        return _pause_refusal(target.name)

    def command(self, spec: LaunchSpec, local_rest_port: int | None = None) -> tuple[list[str], Target, dict[str, str]]:
        """(argv, target, -D conf) for a batch; the Flink home must be known."""
        if self.home is None or not (self.home / "bin" / "flink").is_file():
            raise EngineError("no Flink home: set BATCHGATE_FLINK_HOME or install apache-flink")
        target = self.target(spec)
        conf = flink_conf(spec, target, self._sup.python, local_rest_port)
        return build_argv(self.home, spec, target, conf), target, conf

    async def submit(self, spec: LaunchSpec) -> FlinkRun:
        try:
            target = self.target(spec)
        except InvalidRequest as exc:  # the gateway's defaults changed since the batch was accepted
            raise EngineError(str(exc)) from None
        port = None
        if target.name == LOCAL and not {"rest.port", "rest.bind-port"} & spec.conf.keys():
            port = free_port()
        argv, target, conf = self.command(spec, port)
        if target.name == YARN_SESSION and not target.rest_url:
            target = Target(target.name, await self._session_rest_url(spec.conf[CONF_YARN_APPLICATION_ID]))
        await asyncio.to_thread((spec.workdir / "tmp").mkdir, parents=True, exist_ok=True)
        env = launch_env(spec, clean_env())
        process = await self._sup.launch(argv, spec.workdir, env)
        rest_url = local_rest_url(conf) if target.name == LOCAL else target.rest_url
        facts = _new_facts(spec, target, rest_url)
        if _pause_refusal(target.name) is None:
            facts["argv"] = argv  # a resume runs the same command with -s <savepoint>
        return FlinkRun(self, spec.batch_id, process, process.handle, facts, argv=argv, spec=spec)

    async def recover(self, spec: LaunchSpec, handle: dict[str, Any], offset: int) -> FlinkRun | None:
        """Re-attach by the launcher process while it lives, else by JobID and REST address.

        The local target's mini cluster dies with its launcher: if the launcher is gone, what is
        left is its recorded exit status, or nothing. A paused batch has no running job: it is
        re-attached as paused, with its savepoint.
        """
        base = {k: v for k, v in handle.items() if k != "flink"}
        base.setdefault("workdir", str(spec.workdir))
        facts = copy.deepcopy(dict(handle.get("flink") or {}))
        if not facts:  # launched, but the gateway died before it stored the handle
            try:
                target = self.target(spec)
            except InvalidRequest:
                return None
            facts = _new_facts(spec, target, target.rest_url)
        process = None
        if not facts.get("cli_done"):
            process = self._sup.attach(base, offset)  # it finds the pids itself if the handle lacks them
            if process is not None:
                base = process.handle
        if process is None:
            facts["resuming"] = False  # a resume's launcher that left nothing behind: still paused
            paused = bool(facts.get("paused") and facts.get("savepoint"))
            if not paused and (facts.get("target") == LOCAL or not facts.get("job_ids")):
                return None
            if not facts.get("rest_url") and self.yarn(spec.batch_id, str(facts.get("target"))) is None:
                return None  # on YARN the ResourceManager tells where the JobManager is
            facts["cli_done"] = True
        return FlinkRun(self, spec.batch_id, process, base, facts, spec=spec)


def _pause_refusal(target: str) -> str | None:
    if target == LOCAL:
        return LOCAL_PAUSE_REFUSAL
    if Target(target).application:
        return APPLICATION_PAUSE_REFUSAL
    return None


def _new_facts(spec: LaunchSpec, target: Target, rest_url: str | None) -> dict[str, Any]:
    """What the handle says about the Flink side; an application target's JobID is known in advance."""
    jobs = [fixed_job_id(spec.batch_id)] if target.application else []
    return {"target": target.name, "rest_url": rest_url, "cli_done": False, "submitted": time.time(),
            "job_ids": jobs, "app_ids": list(jobs)}


class FlinkRun:
    """One batch: its launcher process (while it matters) and the Flink job(s) it submitted.

    The handle's "flink" facts: target, rest_url, cli_done (the launcher has exited), submitted (when
    the current launcher started), job_ids (the jobs followed now), app_ids (every JobID so far, across
    resumes), argv (the launch command, for a resume), and while paused: paused, savepoint, paused_job;
    while a savepoint is being taken: pausing {job, request, dir}; while a resume's launcher has not yet
    printed its JobID: resuming.
    """

    def __init__(
        self, engine: FlinkEngine, batch_id: str, process: ProcessRun | None, base: dict[str, Any],
        facts: dict[str, Any], *, argv: list[str] | None = None, spec: LaunchSpec | None = None,
    ) -> None:
        self._engine = engine
        self._spec = spec
        self._log = log.bind(batch_id=batch_id, target=facts.get("target"))
        self._yarn = engine.yarn(batch_id, str(facts.get("target")))  # yarn-application: the RM's view
        self._process = process
        self._base = base
        self._facts = facts
        facts["job_ids"] = list(facts.get("job_ids") or [])
        facts["app_ids"] = list(facts.get("app_ids") or facts["job_ids"])
        self._argv = argv
        self._scan = OutputScanner()
        self._scan.job_ids = list(facts["job_ids"])
        self._states: dict[str, str] = {}
        self._failures: dict[str, int | None] = {}
        self._diagnostics: dict[str, str] = {}
        self._launcher: dict[str, Any] = {}
        self._notes: list[str] = []
        self._killing = False
        self._cancel_sent = 0.0
        self._wake = asyncio.Event()
        self._detached = asyncio.Event()
        # Pause and resume: one at a time; the event stream saves the handle when asked to.
        self._control_lock = asyncio.Lock()
        self._pausing = bool(facts.get("pausing")) and not facts.get("paused")
        self._pausing_since = time.monotonic()
        self._resumed: asyncio.Future[str] | None = None
        self._dirty = False
        self._saved = asyncio.Event()
        self._cli_exited = asyncio.Event()
        if facts.get("cli_done"):
            self._cli_exited.set()
        # Details: the vertex steps of every job seen, sent at most every DETAILS_INTERVAL seconds.
        self._details: dict[str, list[dict[str, Any]]] = {}
        self._details_sent_at = 0.0
        self._details_sent: list[dict[str, Any]] | None = None
        self._details_final = False

    # --- facts ---------------------------------------------------------------------------

    @property
    def handle(self) -> dict[str, Any]:
        return {**self._base, "flink": copy.deepcopy(self._facts)}

    @property
    def local(self) -> bool:
        return bool(self._facts.get("target") == LOCAL)

    @property
    def application(self) -> bool:
        return Target(str(self._facts.get("target"))).application

    @property
    def job_ids(self) -> list[str]:
        return list(self._facts["job_ids"])

    @property
    def app_ids(self) -> list[str]:
        return list(self._facts["app_ids"])

    @property
    def paused(self) -> bool:
        return bool(self._facts.get("paused"))

    @property
    def _workdir(self) -> Path:
        return Path(self._base.get("workdir") or (self._spec.workdir if self._spec else "."))

    def _url(self, job_id: str, terminal: bool = False) -> str | None:
        if self._yarn is not None:
            return self._facts.get("tracking_url")  # on YARN appUrl is the RM's tracking URL
        rest_url = self._facts.get("rest_url")
        return job_url(rest_url, job_id, terminal) if rest_url else None

    def _rest(self, timeout: float | None = None) -> FlinkRest:
        return FlinkRest(str(self._facts.get("rest_url")), timeout=timeout or self._engine.rest_timeout)

    def _exit(self, state: str, diagnostic: str | None) -> Exited:
        flink: dict[str, Any] = {
            "target": self._facts.get("target"), "jobIds": self.job_ids, "restUrl": self._facts.get("rest_url"),
            "jobStates": dict(self._states),
        }
        if self.app_ids != self.job_ids:
            flink["appIds"] = self.app_ids
        if self._facts.get("savepoint"):
            flink["savepoint"] = self._facts["savepoint"]
        if self._facts.get("yarn_app"):
            flink["yarnApplicationId"] = self._facts["yarn_app"]
        info: dict[str, Any] = {"flink": flink}
        if self._launcher:
            info["launcher"] = self._launcher
        return Exited(state, diagnostic, info)

    def _drain_notes(self) -> list[Note]:
        notes, self._notes = [Note(text) for text in self._notes], []
        return notes

    def _handle_event(self) -> AppInfo | None:
        """The handle, when a pause or resume changed it and waits for it to be stored."""
        if not self._dirty:
            return None
        self._dirty = False
        paused_job = self._facts.get("paused_job") if self.paused else None
        # While paused, appUrl shows the stopped job's page among the completed jobs.
        return AppInfo(app_url=self._url(paused_job, True) if paused_job else None, handle=self.handle)

    async def _housekeeping(self) -> AsyncIterator[Event]:
        """Notes, a changed handle and due details: what every loop of the event stream yields first."""
        for note in self._drain_notes():
            yield note
        details = self._details_event()
        if details is not None:
            yield details
        saved = self._handle_event()
        if saved is not None:
            yield saved
            self._saved.set()  # the consumer has stored it before it asked for the next event

    # --- details -------------------------------------------------------------------------

    def _record_details(self, job_id: str, job: dict[str, Any], *, final: bool = False) -> None:
        steps = vertex_steps(job_id, job)
        if steps or job_id not in self._details:
            self._details[job_id] = steps
        self._details_final = self._details_final or final

    def _details_event(self, *, force: bool = False) -> Details | None:
        """A snapshot of every job's vertices, when one is due (or forced) and something changed."""
        due = force or self._details_final or time.monotonic() - self._details_sent_at >= DETAILS_INTERVAL
        if not due:
            return None
        steps = [step for job_steps in self._details.values() for step in job_steps]
        self._details_final = False
        if not steps or steps == self._details_sent:
            return None
        self._details_sent, self._details_sent_at = steps, time.monotonic()
        return Details(steps=copy.deepcopy(steps), counters=detail_counters(steps))

    # --- events --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        if self._argv is not None and self._process is not None:
            yield Note(f"launched pid {self._process.pid}: {display_argv(self._argv)}")
            if self._yarn is not None:
                yield AppInfo(app_state="PENDING")  # appId is the YARN application, once YARN has it
            elif self.application:
                job_id = self.job_ids[0]
                yield AppInfo(app_id=job_id, app_url=self._url(job_id), app_state="PENDING")
        try:
            async for event in self._phases():
                yield event
        finally:
            if self._yarn is not None:
                await self._yarn.close()

    async def _phases(self) -> AsyncIterator[Event]:
        while not self._detached.is_set():
            if self._process is not None and not self._facts["cli_done"]:
                ended = False
                async for event in self._follow_launcher():
                    ended = isinstance(event, Exited)
                    yield event
                if ended or not self._facts["cli_done"]:
                    return  # the launcher's exit was the end, or the gateway detached
            if self.paused:
                async for event in self._hold():
                    yield event
                    if isinstance(event, Exited):
                        return
                continue  # resumed: a new launcher runs (or the gateway detached)
            ended = False
            async for event in self._follow_cluster():
                ended = isinstance(event, Exited)
                yield event
            if ended or not self.paused:
                return  # the end, or the gateway detached
            # paused: hold from here

    async def _launcher_output(self) -> AsyncIterator[LogLines | Exited | None]:
        """The launcher's output. On the local target, None now and then while a job runs: time to read
        the mini cluster's REST API."""
        assert self._process is not None
        output = cast(AsyncGenerator[LogLines | Exited, None], self._process.output())
        if not self.local or not self._facts.get("rest_url"):
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
                if self.job_ids:
                    seen_job = seen_job or time.monotonic()
                    timeout = max(LOCAL_DETAILS_FASTEST, poll_interval(
                        time.monotonic() - seen_job, hurry=False, fastest=self._engine.poll_fastest,
                        slowest=self._engine.poll_slowest))
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

    async def _follow_launcher(self) -> AsyncIterator[Event]:
        assert self._process is not None
        exited: Exited | None = None
        local_rest = self._rest(LOCAL_REST_TIMEOUT) if self.local and self._facts.get("rest_url") else None
        try:
            async for event in self._launcher_output():
                if event is None:
                    assert local_rest is not None
                    await self._read_local_details(local_rest)
                    details = self._details_event()
                    if details is not None:
                        yield details
                    continue
                if isinstance(event, Exited):
                    exited = event  # the last event: the generator ends by itself
                    continue
                new_jobs = self._scan.feed(event.lines)
                yield event
                if self._yarn is not None and self._scan.yarn_application and not self._facts.get("yarn_app"):
                    yield await self._yarn_named(self._scan.yarn_application)
                if self.application and self._scan.web_url and not self._facts.get("rest_url"):
                    self._facts["rest_url"] = self._scan.web_url
                    yield AppInfo(app_url=self._url(self.job_ids[0]), handle=self.handle)
                for job_id in new_jobs:
                    async for info in self._job_submitted(job_id):
                        yield info
                for note in self._drain_notes():
                    yield note
        finally:
            if local_rest is not None:
                await local_rest.close()
        if exited is None:
            return  # detached
        self._facts["cli_done"] = True
        self._cli_exited.set()
        self._launcher = dict(exited.info)
        async for final in self._launcher_exited(exited):
            yield final

    async def _yarn_named(self, app_id: str, app: YarnApp | None = None) -> AppInfo:
        """The YARN application is known: it is appId, and its tracking URL appUrl."""
        assert self._yarn is not None
        self._facts["yarn_app"] = app_id
        if app is None:
            try:
                app = await self._yarn.application(app_id)
            except RmUnavailable as exc:
                self._notes.append(f"the {self._yarn.name} did not answer: {exc}")
        # Until the RM has the application (the launcher names it a moment before it submits), its tracking
        # URL is the RM's proxy path; the RM's own spelling replaces it once it answers.
        self._facts["tracking_url"] = (app.tracking_url if app is not None else None) or \
            f"{self._yarn.rm.urls[0]}/proxy/{app_id}/"
        self._facts["tracked"] = app is not None and app.tracking_url is not None
        return AppInfo(app_id=app_id, app_url=self._facts["tracking_url"], handle=self.handle)

    async def _read_local_details(self, rest: FlinkRest) -> None:
        """The mini cluster's view of its jobs, while it lives (it goes with its launcher)."""
        for job_id in self.job_ids:
            try:
                job = await rest.job(job_id)
            except FlinkRestError:
                continue  # not up yet, or already shutting down
            self._record_details(job_id, job, final=str(job.get("state")) in TERMINAL)

    async def _job_submitted(self, job_id: str) -> AsyncIterator[Event]:
        if self._facts.get("resuming"):
            async for event in self._resumed_as(job_id):
                yield event
            return
        self._facts["job_ids"].append(job_id)
        if job_id not in self._facts["app_ids"]:
            self._facts["app_ids"].append(job_id)
        if len(self._facts["job_ids"]) == 1:
            yield AppInfo(app_id=job_id, app_url=self._url(job_id), app_state="RUNNING" if self.local else "PENDING",
                          running=True, handle=self.handle)
        else:
            yield Note(f"the program submitted another Flink job: {job_id}")
            yield AppInfo(handle=self.handle)
        if self._killing and not self.local:
            await self._cancel([job_id])

    async def _resumed_as(self, job_id: str) -> AsyncIterator[Event]:
        """The resume's launcher printed the new JobID: it becomes appId, and the batch runs again."""
        savepoint = self._facts.get("savepoint")
        self._facts["job_ids"] = [job_id]
        self._facts["app_ids"].append(job_id)
        self._facts.update(paused=False, resuming=False, restored_from=savepoint)
        self._facts.pop("paused_job", None)
        yield Note(f"resumed as Flink job {job_id} from savepoint {savepoint}")
        yield AppInfo(app_id=job_id, app_url=self._url(job_id), app_state="PENDING", running=True,
                      handle=self.handle)
        # Only now (the consumer has stored the new appId and handle) is the resume complete.
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(job_id)
        if self._killing:
            await self._cancel([job_id])

    async def _launcher_exited(self, exited: Exited) -> AsyncIterator[Event]:
        code = exited.info.get("exit_code")
        cause = self._scan.diagnostic()
        if self.local:
            details = self._details_event(force=True)  # the last snapshot the mini cluster gave
            if details is not None:
                yield details
            if len(self.job_ids) == 1 and (url := self._url(self.job_ids[0], True)):
                yield AppInfo(app_url=url)  # the job ended with its launcher: its page among the completed
            diagnostic = exited.diagnostic
            if exited.app_state == "FAILED" and cause:
                diagnostic = f"{diagnostic}: {cause}" if diagnostic else cause
            yield self._exit(exited.app_state, diagnostic)
            return
        if self._facts.get("resuming"):
            async for event in self._resume_failed(exited, cause):
                yield event
            return
        jobs = self.job_ids
        if exited.app_state != "FINISHED" and (self.application or not jobs):
            if self._killing:
                diagnostic = "killed on request before a Flink job was running"
            else:
                diagnostic = f"flink run failed ({exited.diagnostic})" + (f": {cause}" if cause else "")
            yield self._exit(exited.app_state, diagnostic)
            return
        if not jobs:
            yield Note("flink run ended without submitting a Flink job")
            yield self._exit("FINISHED", None)
            return
        if not self._facts.get("rest_url") and self._yarn is None:  # on YARN the RM tells (_follow_cluster)
            yield self._exit("FAILED", "the job was deployed, but the gateway does not know its REST address: "
                                       "set batchgate.flink.jobmanager=host:port to follow it")
            return
        if self._yarn is not None and self._facts.get("yarn_app") and not self._facts.get("tracked"):
            # Deployed: the RM has the application now, and its own spelling of the tracking URL.
            with contextlib.suppress(RmUnavailable):
                app = await self._yarn.application(self._facts["yarn_app"])
                if app is not None and app.tracking_url:
                    self._facts.update(tracking_url=app.tracking_url, tracked=True)
        yield Note(f"flink run exited with code {code}; following Flink job {', '.join(jobs)} "
                   f"at {self._facts.get('rest_url') or 'the REST address the ResourceManager tells'}")
        yield AppInfo(app_id=self._facts.get("yarn_app"), app_url=self._url(jobs[0]), running=True,
                      handle=self.handle)

    async def _resume_failed(self, exited: Exited, cause: str | None) -> AsyncIterator[Event]:
        """A resume's launcher ended without a new job: the batch stays paused at its savepoint."""
        self._facts["resuming"] = False
        how = exited.diagnostic or "exit code 0"
        reason = f"flink run -s {self._facts.get('savepoint')} submitted no job ({how})" + (
            f": {cause}" if cause else "")
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_exception(ResumeFailed(reason))
        if self._killing:
            yield self._exit("KILLED", "killed on request while resuming")
            return
        yield Note(f"resume failed: {reason}; the batch stays paused")
        yield AppInfo(handle=self.handle)

    async def _hold(self) -> AsyncIterator[Event]:
        """Paused: no job runs. Wait for a resume (a new launcher), a kill, or the gateway to detach."""
        while not self._detached.is_set():
            self._wake.clear()
            async for event in self._housekeeping():
                yield event
            if self._process is not None and not self._facts["cli_done"]:
                return  # resumed (a kill meanwhile stops the new launcher; following it tells the end)
            if self._killing:
                yield self._exit("KILLED", "canceled on request while paused (the savepoint "
                                           f"{self._facts.get('savepoint')} is kept)")
                return
            await self._sleep(3600.0)

    async def _follow_cluster(self) -> AsyncIterator[Event]:
        if self._yarn is not None and not self._facts.get("rest_url"):
            located: list[Event] = []
            async for event in self._locate_on_yarn(located):
                yield event
            if located:  # the end: the application is gone or never showed up
                for event in located:
                    yield event
                return
            if self._detached.is_set():
                return
        rest_url = str(self._facts.get("rest_url") or "")
        jobs = self.job_ids
        if not rest_url or not jobs:
            yield self._exit("FAILED", "nothing to follow: no Flink job or REST address is known")
            return
        rest = FlinkRest(rest_url, timeout=self._engine.rest_timeout)
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
        assert self._yarn is not None
        since = time.monotonic()
        said = False
        while not self._detached.is_set():
            try:
                app = await self._yarn.application(self._facts.get("yarn_app"))
            except RmUnavailable as exc:
                app = None
                if not said:
                    said = True
                    yield Note(f"the {self._yarn.name} did not answer: {exc}; retrying")
            if app is not None:
                if self._facts.get("yarn_app") != app.app_id:
                    yield await self._yarn_named(app.app_id, app)
                if app.terminal:
                    final.extend(await self._ended_on_yarn(app))
                    return
                url = rest_url_of(app)
                if url is not None:
                    self._facts["rest_url"] = url
                    yield Note(f"the {self._yarn.name} reports the JobManager of {app.app_id} at {url}")
                    yield AppInfo(handle=self.handle)
                    return
            if time.monotonic() - since > self._engine.lost_after:
                what = self._facts.get("yarn_app") or f"an application tagged {self._yarn.tag}"
                final.append(self._exit("FAILED", f"{what} did not show a running JobManager on YARN within "
                                                  f"{self._engine.lost_after:.0f}s"))
                return
            if await self._sleep(poll_interval(time.monotonic() - since, hurry=True,
                                               fastest=self._engine.poll_fastest, slowest=self._engine.poll_slowest)):
                return

    async def _yarn_check(self, jobs: list[str], final: list[Event]) -> AsyncIterator[Event]:
        """yarn-application: the RM's tracking URL once it has one, and the closing events (into `final`)
        if YARN says the application ended before its jobs did (a JobManager that died, a kill through
        the RM or from outside)."""
        assert self._yarn is not None
        try:
            app = await self._yarn.application(self._facts.get("yarn_app"))
        except RmUnavailable:
            return  # the JobManager's REST API still tells; an unreachable one is handled there
        if app is None:
            return
        if app.tracking_url and not self._facts.get("tracked"):
            self._facts.update(tracking_url=app.tracking_url, tracked=True)
            yield AppInfo(app_url=app.tracking_url, handle=self.handle)
        if app.terminal and not all(self._states.get(j) in ENDED for j in jobs):
            final.extend(await self._ended_on_yarn(app))

    async def _ended_on_yarn(self, app: YarnApp) -> list[Event]:
        """The application ended on YARN: the JobManager's log, then the end with YARN's diagnostics."""
        assert self._yarn is not None
        events: list[Event] = [*await self._yarn.jobmanager_log(app)]
        details = self._details_event(force=True)
        if details is not None:
            events.append(details)
        state = "KILLED" if self._killing and app.app_state != "FINISHED" else app.app_state
        diagnostic = app.diagnostic or (None if state == "FINISHED" else
                                        f"the YARN application {app.app_id} ended {app.state}/{app.final_status}")
        events.append(self._exit(state, diagnostic))
        return events

    def _holding(self) -> bool:
        """A stop with a savepoint is under way or done: the job's FINISHED is a pause, not the end."""
        return self._pausing or self.paused

    async def _watch(self, rest: FlinkRest, jobs: list[str], final: list[Event]) -> AsyncIterator[Event]:
        """Poll the jobs until all have ended (or the batch is paused); the closing events go to `final`."""
        rest_url = rest.base_url
        unreachable_since: float | None = None
        while True:
            self._wake.clear()
            async for event in self._housekeeping():
                yield event
            if self.paused:
                return
            if self._pausing:  # pause() follows the job until it has stopped
                if (not self._control_lock.locked()
                        and time.monotonic() - self._pausing_since > ORPHANED_PAUSE_SECONDS):
                    # A pause interrupted by a restart of the gateway, and not asked for again.
                    self._pausing = False
                    self._facts.pop("pausing", None)
                    self._dirty = True
                    yield Note("an interrupted pause was not asked for again; following the Flink job")
                    continue
                if await self._sleep(1.0):
                    return
                continue
            hurry = self._killing
            try:
                for job_id in jobs:
                    if self._states.get(job_id) in ENDED:
                        continue
                    async for event in self._poll(rest, job_id):
                        yield event
                    hurry = hurry or self._states.get(job_id) in TRANSITIONAL
            except FlinkRestError as exc:
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    self._log.warning("flink.rest_unreachable", rest_url=rest_url, error=str(exc))
                    yield Note(f"the Flink REST API at {rest_url} is unreachable ({exc}); retrying")
                elif now - unreachable_since > self._engine.lost_after:
                    self._log.warning("flink.lost", rest_url=rest_url, error=str(exc))
                    final.append(self._exit("FAILED", f"lost contact with the Flink REST API at {rest_url} "
                                                      f"for {now - unreachable_since:.0f}s: {exc}"))
                    return
            else:
                if unreachable_since is not None:
                    unreachable_since = None
                    yield Note(f"the Flink REST API at {rest_url} answers again")
            if self._yarn is not None:
                async for event in self._yarn_check(jobs, final):
                    yield event
                if final:
                    return
            if self._holding():
                continue
            details = self._details_event()
            if details is not None:
                yield details
            if all(self._states.get(j) in ENDED for j in jobs):
                final.extend(await self._conclude(rest, jobs))
                return
            if self._killing and time.monotonic() - self._cancel_sent > CANCEL_RETRY_SECONDS:
                await self._cancel([j for j in jobs if self._states.get(j) not in ENDED], rest)
                continue
            age = time.time() - float(self._facts.get("submitted") or 0)
            delay = poll_interval(age, hurry=hurry, fastest=self._engine.poll_fastest,
                                  slowest=self._engine.poll_slowest)
            if await self._sleep(delay):
                return

    async def _poll(self, rest: FlinkRest, job_id: str) -> AsyncIterator[Event]:
        try:
            data = await rest.job(job_id)
        except JobNotFound:
            age = time.time() - float(self._facts.get("submitted") or 0)
            if self.application and age < self._engine.lost_after:
                return  # the application's main() has not submitted it yet
            if self._holding():
                return
            self._states[job_id] = NOT_FOUND
            self._diagnostics[job_id] = (
                f"Flink job {job_id} is not known to the cluster at {rest.base_url} (the cluster was restarted, "
                "or the job expired from its job store)")
            yield Note(self._diagnostics[job_id])
            if len(self.job_ids) == 1:
                yield AppInfo(app_state="NOT_FOUND")
            return
        if self._holding():
            return  # a pause began while this was asked: pause() reads the stopping job itself
        state = str(data["state"])
        self._record_details(job_id, data, final=state in TERMINAL)
        if state == self._states.get(job_id):
            return
        self._states[job_id] = state
        yield Note(f"Flink job {job_id} is {state}")
        diagnostic = None
        if state in ("RESTARTING", "FAILING", "FAILED"):
            try:
                timestamp, diagnostic, lines = latest_failure(await rest.exceptions(job_id))
            except FlinkRestError:
                timestamp, lines = None, []
            if diagnostic:
                self._diagnostics[job_id] = diagnostic
            if lines and (job_id not in self._failures or self._failures[job_id] != timestamp):
                self._failures[job_id] = timestamp
                yield LogLines([f"Flink job {job_id} failure:", *lines])
        shown = f"{state.lower()} after: {diagnostic}" if diagnostic and state != "FAILED" else diagnostic
        if len(self.job_ids) == 1:
            yield AppInfo(app_state=app_state(state), app_url=self._url(job_id, state in TERMINAL),
                          running=True, diagnostic=shown)
            return
        yield AppInfo(app_state=overall_state(self.job_ids, self._states), running=True,
                      diagnostic=f"job {job_id} {shown}" if shown else None)

    async def _conclude(self, rest: FlinkRest, jobs: list[str]) -> list[Event]:
        state, diagnostic = conclusion(jobs, self._states, self._diagnostics, canceled_on_request=self._killing)
        events: list[Event] = []
        details = self._details_event(force=True)
        if details is not None:
            events.append(details)
        if self.application:
            try:
                await rest.shutdown_cluster()
                events.append(Note("the application cluster was asked to shut down"))
            except FlinkRestError as exc:
                events.append(Note(f"could not shut the application cluster down: {exc}"))
        app_id = self._facts.get("yarn_app")
        if self._yarn is not None and app_id:
            app = await self._yarn.ended(app_id)
            if app is None:
                events.append(Note(f"YARN did not record the end of {app_id} in time; its JobManager log is not "
                                   "copied"))
            else:
                events.extend(await self._yarn.jobmanager_log(app))
        events.append(self._exit(state, diagnostic))
        return events

    async def _sleep(self, seconds: float) -> bool:
        """Wait, waking early when _wake is set (a kill, a pause, a resume); True if the gateway detached.
        Loops clear _wake before they look at what to do, so a wake-up is never lost."""
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._detached.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self._detached.is_set()

    # --- control -------------------------------------------------------------------------

    async def _cancel(self, job_ids: list[str], rest: FlinkRest | None = None) -> None:
        rest_url = self._facts.get("rest_url")
        if not rest_url or not job_ids:
            return
        self._cancel_sent = time.monotonic()
        client = rest or FlinkRest(str(rest_url), timeout=self._engine.rest_timeout)
        try:
            for job_id in job_ids:
                try:
                    await client.cancel(job_id)
                    self._notes.append(f"cancel requested for Flink job {job_id}")
                except FlinkRestError as exc:
                    self._notes.append(f"cancel of Flink job {job_id} failed: {exc}")
                    self._log.warning("flink.cancel_failed", job_id=job_id, error=str(exc))
        finally:
            if rest is None:
                await client.close()

    async def kill(self) -> None:
        """Local: stop the launcher (and its mini cluster). Cluster: cancel the job by REST; a launcher
        that has not submitted anything yet is stopped instead. Paused: nothing runs; the batch ends."""
        self._killing = True
        self._wake.set()
        launcher_running = self._process is not None and not self._facts["cli_done"]
        if self._yarn is not None:
            # yarn-application: the RM kills the whole application cluster (found by its tag if its id is
            # not known yet); a launcher still deploying it is stopped as well.
            try:
                if text := await self._yarn.kill(self._facts.get("yarn_app")):
                    self._notes.append(text)
            except RmUnavailable as exc:
                self._notes.append(f"kill through the {self._yarn.name} failed: {exc}")
            if launcher_running:
                assert self._process is not None
                await self._process.terminate(self._engine.kill_grace)
            self._wake.set()
            return
        if self._holding() and not launcher_running:
            return  # paused, or being paused: the event stream ends the batch once the job has stopped
        jobs = [j for j in self.job_ids if self._states.get(j) not in ENDED]
        if launcher_running and (self.local or not jobs or self.application):
            assert self._process is not None
            await self._process.terminate(self._engine.kill_grace)
            return
        await self._cancel(jobs)
        self._wake.set()

    async def detach(self) -> None:
        self._detached.set()
        if self._resumed is not None and not self._resumed.done():
            # The resume request stays on the batch row; the next gateway process completes it.
            self._resumed.cancel()
        if self._process is not None:
            self._process.detach()

    # --- pause and resume (session cluster) ------------------------------------------------

    async def _wait_or_detach(self, awaitable: Any, timeout: float) -> bool:
        """Wait for an event or a future; False on timeout. A detach cancels the caller: the control
        request stays on the batch row, for the next gateway process to finish."""
        waiting = asyncio.ensure_future(awaitable)
        detached = asyncio.ensure_future(self._detached.wait())
        try:
            await asyncio.wait({waiting, detached}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            detached.cancel()
            if not waiting.done():
                waiting.cancel()
        if self._detached.is_set():
            raise asyncio.CancelledError("the gateway detached")
        return waiting.done() and not waiting.cancelled()

    async def _save_handle(self) -> None:
        """Have the event stream store the handle, and wait until it has."""
        self._saved.clear()
        self._dirty = True
        self._wake.set()
        if not await self._wait_or_detach(self._saved.wait(), HANDLE_SAVE_SECONDS):
            self._log.warning("flink.handle_not_saved")

    def _refusal(self) -> str | None:
        return _pause_refusal(str(self._facts.get("target")))

    async def pause(self) -> dict[str, Any]:
        """Stop the job with a savepoint (POST /jobs/{id}/stop); returns {"savepoint": location}."""
        reason = self._refusal()
        if reason:
            raise NotSupported(reason)
        async with self._control_lock:
            if self.paused:
                return {"savepoint": self._facts.get("savepoint")}
            if self._killing:
                raise NotSupported("the batch is being killed")
            if not self._facts["cli_done"] and not await self._wait_or_detach(
                    self._cli_exited.wait(), LAUNCHER_SETTLE_SECONDS):
                raise NotSupported("flink run is still submitting the job; pause it once it runs")
            pending = self._facts.get("pausing") or {}
            if len(self.job_ids) > 1:
                raise NotSupported("the program submitted several Flink jobs; only a single-job batch can be "
                                   "paused and resumed")
            job_id = pending.get("job") or (self.job_ids[0] if self.job_ids else None)
            if job_id is None:
                raise NotSupported("no Flink job is known yet")
            if self._states.get(job_id) in ENDED:
                raise NotSupported(f"Flink job {job_id} has already ended ({self._states[job_id]})")
            self._pausing, self._pausing_since = True, time.monotonic()
            self._wake.set()
            rest = self._rest()
            try:
                location = await self._take_savepoint(rest, job_id)
                stopped = await self._await_stopped(rest, job_id)
            except asyncio.CancelledError:
                raise  # the gateway detached: the request and the handle's "pausing" stay for the next one
            except Exception as exc:
                self._pausing = False
                self._facts.pop("pausing", None)
                self._dirty = True
                self._wake.set()
                if isinstance(exc, FlinkRestError):  # Flink's answer: the job keeps running
                    self._notes.append(f"pause failed: {exc}")
                    raise NotSupported(str(exc)) from None
                raise
            finally:
                await rest.close()
            self._facts.pop("pausing", None)
            self._facts.update(paused=True, savepoint=location, paused_job=job_id)
            self._pausing = False
            self._notes.append(f"Flink job {job_id} stopped with a savepoint at {location}"
                               + ("" if stopped == "FINISHED" else f" (the job is {stopped})"))
            await self._save_handle()
            self._log.info("flink.paused", job_id=job_id, savepoint=location)
            return {"savepoint": location}

    async def _take_savepoint(self, rest: FlinkRest, job_id: str) -> str:
        """Ask for a stop with a savepoint (or follow the one asked before a gateway restart) until done."""
        pending = self._facts.get("pausing") or {}
        request = pending.get("request") if pending.get("job") == job_id else None
        directory = str(pending.get("dir") or savepoint_dir(self._spec.conf if self._spec else {}, self._workdir))
        deadline = time.monotonic() + SAVEPOINT_TIMEOUT
        attempts = 0
        while True:
            if request is None:
                # A job is RUNNING before all its tasks are; a savepoint needs them running.
                await self._await_tasks_running(rest, job_id, deadline)
                request = await rest.stop_with_savepoint(job_id, directory)
                attempts += 1
                self._facts["pausing"] = {"job": job_id, "request": request, "dir": directory}
                self._notes.append(f"stopping Flink job {job_id} with a savepoint in {directory}")
                await self._save_handle()
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
                    self._notes.append(f"the savepoint of Flink job {job_id} failed ({failure}); trying again")
                    request = None
                    await self._wait_or_detach(asyncio.sleep(1.0), 2.0)
                    continue
                raise FlinkRestError(f"the savepoint of Flink job {job_id} failed: {failure}")
            if time.monotonic() > deadline:
                raise FlinkRestError(f"no savepoint of Flink job {job_id} after {SAVEPOINT_TIMEOUT:.0f}s")
            await self._wait_or_detach(asyncio.sleep(SAVEPOINT_POLL_SECONDS), SAVEPOINT_POLL_SECONDS + 1)

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
            await self._wait_or_detach(asyncio.sleep(SAVEPOINT_POLL_SECONDS), SAVEPOINT_POLL_SECONDS + 1)

    async def _savepoint_after_the_fact(self, rest: FlinkRest, job_id: str, directory: str) -> str:
        job = await rest.job(job_id)
        if str(job.get("state")) not in TERMINAL:
            self._facts.pop("pausing", None)
            return await self._take_savepoint(rest, job_id)  # still running: ask again
        found = await asyncio.to_thread(_newest_savepoint, directory, job_id)
        if found is None:
            raise FlinkRestError(f"Flink job {job_id} is {job.get('state')} and its savepoint is unknown")
        return found

    async def _await_stopped(self, rest: FlinkRest, job_id: str) -> str:
        """After the savepoint the job turns FINISHED within seconds; its last vertex figures are kept."""
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        state = self._states.get(job_id, "RUNNING")
        while time.monotonic() < deadline:
            try:
                job = await rest.job(job_id)
            except FlinkRestError:
                await self._wait_or_detach(asyncio.sleep(0.5), 1.5)
                continue
            state = str(job["state"])
            if state in TERMINAL:
                self._record_details(job_id, job, final=True)
                self._states[job_id] = state
                self._notes.append(f"Flink job {job_id} is {state}")
                return state
            await self._wait_or_detach(asyncio.sleep(SAVEPOINT_POLL_SECONDS), SAVEPOINT_POLL_SECONDS + 1)
        return state

    async def resume(self) -> dict[str, Any]:
        """Run the same `flink run` with -s <savepoint>; returns {"appIds": every JobID so far} once the
        new job's JobID is known (and stored as appId)."""
        reason = self._refusal()
        if reason:
            raise NotSupported(reason)
        async with self._control_lock:
            if not self.paused:
                return {"appIds": self.app_ids}  # resumed already (before a restart of the gateway)
            if self._killing:
                raise NotSupported("the batch is being killed")
            resumed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._resumed = resumed
            try:
                if not self._facts.get("resuming"):  # else a launcher started before a gateway restart runs
                    await self._launch_resume()
                job_id = await resumed
            except (ResumeFailed, EngineError) as exc:  # nothing runs: the batch stays paused
                raise NotSupported(f"resume failed: {exc}") from None
            finally:
                self._resumed = None
            self._log.info("flink.resumed", job_id=job_id)
            return {"appIds": self.app_ids}

    async def _launch_resume(self) -> None:
        savepoint = str(self._facts.get("savepoint") or "")
        if not savepoint:
            raise NotSupported("no savepoint is known for this batch")
        spec = self._spec
        if spec is None:
            raise NotSupported("the batch's launch request is unknown to this run")
        argv = list(self._facts.get("argv") or self._engine.command(spec)[0])
        argv = resume_argv(argv, savepoint)
        workdir = self._workdir
        offset = await asyncio.to_thread(_prepare_relaunch, workdir)
        env = launch_env(spec, clean_env())
        launched = await self._engine.supervisor.launch(argv, workdir, env)
        # The new launcher appends to the same output file: follow it from where the last one ended.
        process = ProcessRun(self._engine.supervisor, launched.handle, offset)
        self._process = process
        self._base = dict(process.handle)
        self._scan = OutputScanner()
        self._facts.update(cli_done=False, resuming=True, submitted=time.time(), job_ids=[])
        self._cli_exited.clear()
        self._notes.append(f"resuming from savepoint {savepoint}: launched pid {process.pid}: {display_argv(argv)}")
        await self._save_handle()


def _prepare_relaunch(workdir: Path) -> int:
    """Forget the last launcher's exit status; returns where the next launcher's output will start."""
    (workdir / EXIT).unlink(missing_ok=True)
    output = workdir / OUTPUT
    return output.stat().st_size if output.exists() else 0


def _newest_savepoint(directory: str, job_id: str) -> str | None:
    """The newest finished savepoint of a job in a local directory (savepoint-<6 hex of the JobID>-…)."""
    if not directory.startswith("file:"):
        return None
    from urllib.parse import urlsplit

    root = Path(urlsplit(directory).path)
    found = [p for p in root.glob(f"savepoint-{job_id[:6]}-*") if (p / "_metadata").is_file()]
    if not found:
        return None
    newest = max(found, key=lambda p: p.stat().st_mtime)
    return newest.as_uri()
