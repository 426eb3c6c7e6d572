"""FLINK and PYFLINK: `flink run` on the local mini cluster, a session cluster or an application cluster.

appId is the Flink JobID. With the local target the mini cluster lives in the launcher process, so the
process is the source of truth: its output is the log and its exit is the end. With a cluster target
the launcher runs detached and exits once the job is submitted; from then on the job's state comes
from the cluster's REST API (/jobs/{id}), read at an interval that starts fast and slows as the job
ages, and is fast again while the job is in a transitional state or being canceled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from engines.base import AppInfo, EngineError, Event, Exited, InvalidRequest, LaunchSpec, LogLines, Note
from engines.flink_cli import (
    LOCAL,
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
    job_url,
    latest_failure,
    overall_state,
    poll_interval,
)
from engines.process import ProcessRun, ProcessSupervisor, clean_env

log = structlog.get_logger("engines.flink")

CANCEL_RETRY_SECONDS = 5.0


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
    ) -> None:
        self._sup = supervisor
        self.home = home or default_flink_home()
        self.default_target = default_target
        self.default_jobmanager = default_jobmanager
        self.poll_fastest = poll_fastest
        self.poll_slowest = poll_slowest
        self.lost_after = lost_after
        self.kill_grace = kill_grace
        self.rest_timeout = rest_timeout

    def target(self, spec: LaunchSpec) -> Target:
        return choose_target(spec.conf, self.default_target, self.default_jobmanager)

    def validate(self, spec: LaunchSpec) -> None:
        check_request(spec)
        check_resource(spec, self.target(spec))

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
        await asyncio.to_thread((spec.workdir / "tmp").mkdir, parents=True, exist_ok=True)
        env = launch_env(spec, clean_env())
        process = await self._sup.launch(argv, spec.workdir, env)
        rest_url = local_rest_url(conf) if target.name == LOCAL else target.rest_url
        facts = _new_facts(spec, target, rest_url)
        return FlinkRun(self, spec.batch_id, process, process.handle, facts, argv=argv)

    async def recover(self, spec: LaunchSpec, handle: dict[str, Any], offset: int) -> FlinkRun | None:
        """Re-attach by the launcher process while it lives, else by JobID and REST address.

        The local target's mini cluster dies with its launcher: if the launcher is gone, what is
        left is its recorded exit status, or nothing.
        """
        base = {k: v for k, v in handle.items() if k != "flink"}
        base.setdefault("workdir", str(spec.workdir))
        facts = dict(handle.get("flink") or {})
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
            if facts.get("target") == LOCAL or not facts.get("job_ids") or not facts.get("rest_url"):
                return None
            facts["cli_done"] = True
        return FlinkRun(self, spec.batch_id, process, base, facts)


def _new_facts(spec: LaunchSpec, target: Target, rest_url: str | None) -> dict[str, Any]:
    """What the handle says about the Flink side; an application target's JobID is known in advance."""
    return {"target": target.name, "rest_url": rest_url, "cli_done": False, "submitted": time.time(),
            "job_ids": [fixed_job_id(spec.batch_id)] if target.application else []}


class FlinkRun:
    """One batch: its launcher process (while it matters) and the Flink job(s) it submitted."""

    def __init__(
        self, engine: FlinkEngine, batch_id: str, process: ProcessRun | None, base: dict[str, Any],
        facts: dict[str, Any], *, argv: list[str] | None = None,
    ) -> None:
        self._engine = engine
        self._log = log.bind(batch_id=batch_id, target=facts.get("target"))
        self._process = process
        self._base = base
        self._facts = facts
        facts["job_ids"] = list(facts.get("job_ids") or [])
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

    # --- facts ---------------------------------------------------------------------------

    @property
    def handle(self) -> dict[str, Any]:
        return {**self._base, "flink": {**self._facts, "job_ids": list(self._facts["job_ids"])}}

    @property
    def local(self) -> bool:
        return bool(self._facts.get("target") == LOCAL)

    @property
    def application(self) -> bool:
        return Target(str(self._facts.get("target"))).application

    @property
    def job_ids(self) -> list[str]:
        return list(self._facts["job_ids"])

    def _url(self, job_id: str, terminal: bool = False) -> str | None:
        rest_url = self._facts.get("rest_url")
        return job_url(rest_url, job_id, terminal) if rest_url else None

    def _exit(self, state: str, diagnostic: str | None) -> Exited:
        info: dict[str, Any] = {"flink": {
            "target": self._facts.get("target"), "jobIds": self.job_ids, "restUrl": self._facts.get("rest_url"),
            "jobStates": dict(self._states),
        }}
        if self._launcher:
            info["launcher"] = self._launcher
        return Exited(state, diagnostic, info)

    def _drain_notes(self) -> list[Note]:
        notes, self._notes = [Note(text) for text in self._notes], []
        return notes

    # --- events --------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        if self._argv is not None and self._process is not None:
            yield Note(f"launched pid {self._process.pid}: {display_argv(self._argv)}")
            if self.application:
                job_id = self.job_ids[0]
                yield AppInfo(app_id=job_id, app_url=self._url(job_id), app_state="PENDING")
        if self._process is not None and not self._facts["cli_done"]:
            ended = False
            async for event in self._follow_launcher():
                ended = isinstance(event, Exited)
                yield event
            if ended or not self._facts["cli_done"]:
                return  # the launcher's exit was the end, or the gateway detached
        async for event in self._follow_cluster():
            yield event

    async def _follow_launcher(self) -> AsyncIterator[Event]:
        assert self._process is not None
        exited: Exited | None = None
        async for event in self._process.output():
            if isinstance(event, Exited):
                exited = event  # the last event: the generator ends by itself
                continue
            new_jobs = self._scan.feed(event.lines)
            yield event
            if self.application and self._scan.web_url and not self._facts.get("rest_url"):
                self._facts["rest_url"] = self._scan.web_url
                yield AppInfo(app_url=self._url(self.job_ids[0]), handle=self.handle)
            for job_id in new_jobs:
                async for info in self._job_submitted(job_id):
                    yield info
            for note in self._drain_notes():
                yield note
        if exited is None:
            return  # detached
        self._facts["cli_done"] = True
        self._launcher = dict(exited.info)
        async for final in self._launcher_exited(exited):
            yield final

    async def _job_submitted(self, job_id: str) -> AsyncIterator[Event]:
        self._facts["job_ids"].append(job_id)
        if len(self._facts["job_ids"]) == 1:
            yield AppInfo(app_id=job_id, app_url=self._url(job_id), app_state="RUNNING" if self.local else "PENDING",
                          running=True, handle=self.handle)
        else:
            yield Note(f"the program submitted another Flink job: {job_id}")
            yield AppInfo(handle=self.handle)
        if self._killing and not self.local:
            await self._cancel([job_id])

    async def _launcher_exited(self, exited: Exited) -> AsyncIterator[Event]:
        code = exited.info.get("exit_code")
        cause = self._scan.diagnostic()
        if self.local:
            diagnostic = exited.diagnostic
            if exited.app_state == "FAILED" and cause:
                diagnostic = f"{diagnostic}: {cause}" if diagnostic else cause
            yield self._exit(exited.app_state, diagnostic)
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
        if not self._facts.get("rest_url"):
            yield self._exit("FAILED", "the job was deployed, but the gateway does not know its REST address: "
                                       "set batchgate.flink.jobmanager=host:port to follow it")
            return
        yield Note(f"flink run exited with code {code}; following Flink job {', '.join(jobs)} "
                   f"at {self._facts['rest_url']}")
        yield AppInfo(app_url=self._url(jobs[0]), running=True, handle=self.handle)

    async def _follow_cluster(self) -> AsyncIterator[Event]:
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

    async def _watch(self, rest: FlinkRest, jobs: list[str], final: list[Event]) -> AsyncIterator[Event]:
        """Poll the jobs until all have ended; the closing events go to `final`."""
        rest_url = rest.base_url
        unreachable_since: float | None = None
        while True:
            for note in self._drain_notes():
                yield note
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
            self._states[job_id] = NOT_FOUND
            self._diagnostics[job_id] = (
                f"Flink job {job_id} is not known to the cluster at {rest.base_url} (the cluster was restarted, "
                "or the job expired from its job store)")
            yield Note(self._diagnostics[job_id])
            if len(self.job_ids) == 1:
                yield AppInfo(app_state="NOT_FOUND")
            return
        state = str(data["state"])
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
        if self.application:
            try:
                await rest.shutdown_cluster()
                events.append(Note("the application cluster was asked to shut down"))
            except FlinkRestError as exc:
                events.append(Note(f"could not shut the application cluster down: {exc}"))
        events.append(self._exit(state, diagnostic))
        return events

    async def _sleep(self, seconds: float) -> bool:
        """Wait, waking early for a kill; True if the gateway detached meanwhile."""
        self._wake.clear()
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
        that has not submitted anything yet is stopped instead."""
        self._killing = True
        self._wake.set()
        jobs = [j for j in self.job_ids if self._states.get(j) not in ENDED]
        launcher_running = self._process is not None and not self._facts["cli_done"]
        if launcher_running and (self.local or not jobs or self.application):
            assert self._process is not None
            await self._process.terminate(self._engine.kill_grace)
            return
        await self._cancel(jobs)
        self._wake.set()

    async def detach(self) -> None:
        self._detached.set()
        if self._process is not None:
            self._process.detach()
