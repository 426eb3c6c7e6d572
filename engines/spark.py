"""SPARK and PYSPARK: spark-submit under the detached runner; facts from its output and the cluster APIs.

The parts: this module (the engine: launch and re-attach); engines/spark_submit.py (masters, validation,
the command line) and engines/spark_output.py (what its output says); engines/spark_state.py (the typed
state of a run and its stored facts); engines/spark_run.py (one run's event stream: which source decides
the end; kill) with engines/spark_context.py (the state its parts share, and how facts merge) and
engines/spark_poll.py (the cluster API and the driver's UI on a timer); engines/spark_status.py (the
cluster APIs); engines/spark_details.py and engines/spark_eventlog.py (jobs and stages, from the driver's
UI and from the event log); engines/spark_launcher.py (the long-lived launcher JVM).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from engines.base import EngineError, Handle, InvalidRequest, LaunchSpec
from engines.process import ProcessSupervisor, read_pids
from engines.process_handle import ProcessHandle
from engines.runner import EXIT
from engines.spark_context import SparkTimings
from engines.spark_launcher import LauncherJvm, submit_in_jvm
from engines.spark_run import SparkRun
from engines.spark_state import LauncherState, SparkFacts, SparkHandle
from engines.spark_status import IN_CLUSTER_CA, IN_CLUSTER_TOKEN, ClusterApi, K8sApi, StandaloneApi, YarnApi
from engines.spark_submit import REST_ENABLED_CONF, SPARK_TYPES, Master, SparkSubmit, SubmitConfig, parse_master
from engines.yarn import rm_urls_from_site


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

    @property
    def timings(self) -> SparkTimings:
        return SparkTimings(poll_min=self.poll_min, poll_max=self.poll_max, kill_grace=self.kill_grace,
                            lost_after=self.lost_after, kill_confirm=self.kill_confirm)


PAUSE_REFUSAL = "Spark cannot suspend a running application (it has no savepoints); kill it and restart it instead"


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
        facts = SparkFacts(batch_id=spec.batch_id, master=plan.master.url, deploy_mode=plan.deploy_mode,
                           launcher_waits=plan.launcher_waits,
                           rest_submission=spec.conf.get(REST_ENABLED_CONF, "").lower() == "true")
        if plan.master.kind == "k8s":
            facts.namespace = spec.conf.get("spark.kubernetes.namespace") or self.config.k8s_namespace
        notes = []
        if plan.ignored_conf:
            notes.append(f"conf not passed to Spark (not spark.* keys): {', '.join(sorted(plan.ignored_conf))}")
        api = self.cluster_api(plan.master, facts)
        if plan.cluster_mode and api is None:
            notes.append("no cluster API configured for this master: the state comes from spark-submit alone")
        before: list[str] = []  # what the long-lived launcher did, when it did not submit it
        if self.jvm is not None and isinstance(api, YarnApi) and plan.cluster_mode and not plan.launcher_waits:
            app_id, before = await submit_in_jvm(self.jvm, plan, spec.workdir, api, facts.ids)
            if app_id is not None:
                facts.app_id, facts.launcher = app_id, "jvm"
                return SparkRun(self.config.timings, process=None, base=ProcessHandle(workdir=str(spec.workdir)),
                                facts=facts,
                                api=api, notes=[*before, *notes], unreported=("appId",))
        process = await self._sup.launch(plan.argv, spec.workdir, plan.env)
        return SparkRun(self.config.timings, process=process, base=process.handle, facts=facts, api=api,
                        notes=[*before, f"launching: {plan.display}", *notes])

    async def recover(self, spec: LaunchSpec, handle: Handle, offset: int) -> SparkRun | None:
        stored = SparkHandle.parse(handle)
        facts = stored.spark or SparkFacts.from_dict({})
        facts.batch_id = facts.batch_id or spec.batch_id
        facts.master = facts.master or self.builder.master_of(spec)
        facts.deploy_mode = facts.deploy_mode or self.builder.deploy_mode_of(spec)
        try:
            master = parse_master(facts.master)
        except ValueError:
            return None
        base = stored.process()
        if base.runner_pid is None and base.workdir is not None:
            # Launched, but the gateway stopped before it stored the handle: the runner left its pids.
            pids = read_pids(Path(base.workdir))
            if pids:
                base = base.model_copy(update={"runner_pid": pids["runner"], "child_pid": pids["child"]})
        launcher = launcher_state(base)
        process = self._sup.attach(base, offset) if launcher is not LauncherState.NONE else None
        api = self.cluster_api(master, facts)
        if process is None and not facts.cluster:
            return None  # a client-mode driver with no launcher to follow: lost
        notes = []
        lost = launcher is LauncherState.GONE
        if lost and facts.cluster:
            notes.append("spark-submit is gone; following the application through the cluster API")
        return SparkRun(self.config.timings, process=process, base=base, facts=facts, api=api, notes=notes,
                        launcher_lost=lost)

    def cluster_api(self, master: Master, facts: SparkFacts) -> ClusterApi | None:
        cluster = facts.cluster
        batch_id = str(facts.batch_id)
        if master.kind == "standalone":
            configured = self.config.master_web_urls.get(master.url.rstrip("/"))
            web = [configured] if configured else [f"http://{h}:8080" for h, _ in master.hosts]
            rest: list[str] = []
            for host, port in master.hosts:
                if facts.rest_submission:
                    rest.append(f"http://{host}:{port}")
                rest.append(f"http://{host}:{self.config.rest_port}")
            return StandaloneApi(master, web_urls=web, rest_urls=list(dict.fromkeys(rest)), cluster=cluster)
        if master.kind == "yarn" and self._yarn_rm:
            return YarnApi(self._yarn_rm, batch_id=batch_id, cluster=cluster)
        if master.kind == "k8s" and cluster and master.api_url:
            token = self.config.k8s_token_file or (IN_CLUSTER_TOKEN if IN_CLUSTER_TOKEN.exists() else None)
            ca = self.config.k8s_ca_file or (IN_CLUSTER_CA if IN_CLUSTER_CA.exists() else None)
            namespace = facts.namespace or self.config.k8s_namespace
            return K8sApi(master.api_url, batch_id=batch_id, namespace=namespace, token_file=token, ca_file=ca)
        return None


def launcher_state(handle: ProcessHandle) -> LauncherState:
    """What recover() finds of spark-submit, by the process handle."""
    if handle.runner_pid is None or handle.workdir is None:
        return LauncherState.NONE
    if (Path(handle.workdir) / EXIT).exists():
        return LauncherState.EXITED
    try:
        fields = Path(f"/proc/{handle.runner_pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, ticks = fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return LauncherState.GONE
    started = handle.runner_start
    running = state not in "ZX" and (started is None or ticks == started)
    return LauncherState.RUNNING if running else LauncherState.GONE

__all__ = ["SparkConfig", "SparkEngine", "SparkRun"]
