"""FLINK and PYFLINK: `flink run` on the local mini cluster, a session cluster or an application cluster.

appId is the Flink JobID. With the local target the mini cluster lives in the launcher process, so the
process is the source of truth: its output is the log and its exit is the end. With a cluster target
the launcher runs detached and exits once the job is submitted; from then on the job's state comes
from the cluster's REST API. On a session cluster (target remote, yarn-session) a running batch can be
paused with a savepoint and resumed from it.

The parts: this module (the engine: launch and re-attach), engines/flink_cli.py (command lines, targets,
reading `flink run` output), engines/flink_state.py (the run's phase and its stored facts),
engines/flink_run.py (one run's event stream, kill, pause, resume) with engines/flink_context.py (its
shared state), engines/flink_launcher.py (following `flink run`), engines/flink_watch.py (following the
job on its cluster), engines/flink_savepoint.py (pause and resume), engines/flink_rest.py (the REST
client) and engines/flink_yarn.py (what YARN adds).

Details: the vertices of the job(s) with records and bytes in and out, read from the same REST answer
the state comes from (on the local target from the mini cluster's REST API while the launcher runs).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from engines.base import EngineError, Handle, InvalidRequest, LaunchSpec
from engines.flink_cli import (
    CONF_YARN_APPLICATION_ID,
    LOCAL,
    YARN_APPLICATION,
    YARN_SESSION,
    Target,
    build_argv,
    check_request,
    check_resource,
    choose_target,
    default_flink_home,
    flink_conf,
    free_port,
    launch_env,
    local_rest_url,
)
from engines.flink_run import FlinkRun, pause_refusal
from engines.flink_state import FlinkFacts, FlinkHandle, Phase
from engines.flink_yarn import FlinkYarn, session_rest_url
from engines.process import ProcessSupervisor, clean_env
from engines.yarn import ResourceManager, RmUnavailable, rm_urls_from_site


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
        return pause_refusal(target.name)

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
        facts = FlinkFacts.new(spec.batch_id, target, rest_url)
        if pause_refusal(target.name) is None:
            facts.argv = argv  # a resume runs the same command with -s <savepoint>
        return FlinkRun(self, spec.batch_id, process, process.handle, facts, argv=argv, spec=spec)

    async def recover(self, spec: LaunchSpec, handle: Handle, offset: int) -> FlinkRun | None:
        """Re-attach by the launcher process while it lives, else by JobID and REST address.

        The local target's mini cluster dies with its launcher: if the launcher is gone, what is
        left is its recorded exit status, or nothing. A paused batch has no running job: it is
        re-attached as paused, with its savepoint.
        """
        stored = FlinkHandle.parse(handle)
        base = stored.process()
        if base.workdir is None:
            base = base.model_copy(update={"workdir": str(spec.workdir)})
        if stored.flink is not None:
            facts = stored.flink
        else:  # launched, but the gateway died before it stored the handle
            try:
                target = self.target(spec)
            except InvalidRequest:
                return None
            facts = FlinkFacts.new(spec.batch_id, target, target.rest_url)
        process = None
        if facts.phase.launcher_running:
            process = self._sup.attach(base, offset)  # it finds the pids itself if the handle lacks them
            if process is not None:
                base = process.handle
        if process is None:
            # A launcher that left nothing behind: the job is followed on its cluster, and a resume's
            # launcher that left nothing behind leaves the batch paused.
            if facts.phase is Phase.RESUMING:
                facts.phase = Phase.PAUSED
            elif facts.phase is Phase.LAUNCHING:
                facts.phase = Phase.FOLLOWING
            paused = facts.phase.paused and bool(facts.savepoint)
            if not paused and (facts.target == LOCAL or not facts.job_ids):
                return None
            if not facts.rest_url and self.yarn(spec.batch_id, facts.target) is None:
                return None  # on YARN the ResourceManager tells where the JobManager is
        return FlinkRun(self, spec.batch_id, process, base, facts, spec=spec)
