"""The launcher's cost: cluster-mode Spark submits to a real YARN cluster, by a spark-submit process per
batch and by the long-lived launcher JVM (engines/spark_launcher.py), both measured in this run.

A YARN cluster (tests/yarn_cluster.py: a ResourceManager and a NodeManager from Hadoop's Maven
artifacts) and a Spark home for it (pyspark's, with conf/ as an operator writes it) are started here.
The applications are trivial (pyspark's pi.py) and killed through the RM as soon as YARN has accepted
them, so that they do not compete with the launcher being measured.

- **per submit**, one at a time, without the gateway: the process's CPU seconds (user + system of the
  spark-submit process tree, from wait4) and peak RSS (ru_maxrss) and its wall time; the JVM's CPU over
  the submits divided by their number (its start-up, the first submit, reported apart) and its peak RSS
  (VmHWM) after all of them;
- **50 queued**: a gateway (`BATCHGATE_SPARK_LAUNCHER=process`, then `jvm`) gets 50 cluster-mode PYSPARK
  batches at once; from the first POST to the last application id the gateway knows, as submits per
  minute, with the CPU the launchers used per submit (the spark-submit processes' own accounting from
  their runners' exit records; the JVM's from /proc).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks import harness
from benchmarks.report import Figure
from engines.base import LaunchSpec
from engines.spark_launcher import LauncherJvm
from engines.spark_submit import SparkSubmit, SubmitConfig, SubmitPlan, find_spark_home
from tests.yarn_cluster import YarnCluster, spark_home_for

CLUSTER_CONF = {"spark.master": "yarn", "spark.submit.deployMode": "cluster"}
NAME = "bench-launcher"


@dataclass
class PerSubmit:
    cpu: list[float]
    rss_mb: list[float]
    wall: list[float]
    first_wall: float = 0.0  # the JVM: its start-up and first submit
    first_cpu: float = 0.0

    def mean(self, values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")


class Killer:
    """Kills every application of the cluster as soon as YARN has accepted it."""

    def __init__(self, cluster: YarnCluster) -> None:
        self.cluster = cluster
        self.killed = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                url = f"{self.cluster.rm_url}/ws/v1/cluster/apps?states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING"
                try:
                    async with session.get(url) as resp:
                        apps = ((await resp.json()).get("apps") or {}).get("app") or []
                    for app in apps:
                        if app["state"] in ("ACCEPTED", "RUNNING"):
                            async with session.put(f"{self.cluster.rm_url}/ws/v1/cluster/apps/{app['id']}/state",
                                                   json={"state": "KILLED"}):
                                self.killed += 1
                except (aiohttp.ClientError, ValueError):
                    pass
                await asyncio.sleep(0.25)

    def __enter__(self) -> Killer:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def plan_for(builder: SparkSubmit, workdir: Path) -> SubmitPlan:
    spec = LaunchSpec(batch_id=str(uuid.uuid4()), batch_type="PYSPARK", user="bench", real_user="bench", name=NAME,
                      resource=str(pi_py()), class_name=None, conf=CLUSTER_CONF, args=["2"], workdir=workdir)
    plan = builder.plan(spec)
    for directory in plan.make_dirs:
        directory.mkdir(parents=True, exist_ok=True)
    return plan


def pi_py() -> Path:
    home = find_spark_home(None)
    assert home is not None, "pyspark is not installed"
    return home / "examples" / "src" / "main" / "python" / "pi.py"


def run_process(plan: SubmitPlan, workdir: Path) -> tuple[float, float, float, int]:
    """One spark-submit to completion: (cpu seconds, peak RSS MB, wall seconds, exit code)."""
    started = time.monotonic()
    with open(workdir / "spark-submit.log", "wb") as out:
        proc = subprocess.Popen(plan.argv, env=plan.env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, time.monotonic() - started, proc.returncode


def jvm_cpu(pid: int) -> float:
    """CPU seconds of the JVM (and anything it started)."""
    total = 0.0
    for p in harness.descendants(pid):
        stat = harness._proc_stat(p)
        if stat is not None:
            total += stat[1]
    return total


def jvm_peak_mb(pid: int) -> float:
    """The process's peak RSS (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def killed_by_us(log: Path) -> bool:
    """spark-submit's one status report after YARN accepted the application can come after the harness's
    kill: it then exits 1 saying the application finished KILLED. That submission was done all the same."""
    text = log.read_text(errors="replace")
    return "finished with status: KILLED" in text and "was killed by user" in text


async def per_submit_process(builder: SparkSubmit, root: Path, n: int) -> PerSubmit:
    out = PerSubmit([], [], [])
    for i in range(n):
        workdir = root / f"process-{i}"
        plan = await asyncio.to_thread(plan_for, builder, workdir)
        cpu, rss, wall, code = await asyncio.to_thread(run_process, plan, workdir)
        if code != 0 and not killed_by_us(workdir / "spark-submit.log"):
            raise RuntimeError(f"spark-submit exited {code}: see {workdir / 'spark-submit.log'}")
        out.cpu.append(cpu)
        out.rss_mb.append(rss)
        out.wall.append(wall)
    return out


async def per_submit_jvm(builder: SparkSubmit, home: Path, root: Path, n: int) -> PerSubmit:
    jvm = LauncherJvm(home, root / "jvm", python=sys.executable)
    try:
        started = time.monotonic()
        first = await jvm.submit(await asyncio.to_thread(plan_for, builder, root / "jvm-0"))
        if not first.app_id:
            raise RuntimeError(f"the launcher JVM's first submit ended {first.state}; see {jvm.log_path}")
        assert jvm.pid is not None
        out = PerSubmit([], [], [], first_wall=time.monotonic() - started, first_cpu=jvm_cpu(jvm.pid))
        for i in range(1, n + 1):
            plan = await asyncio.to_thread(plan_for, builder, root / f"jvm-{i}")
            before, t = jvm_cpu(jvm.pid), time.monotonic()
            done = await jvm.submit(plan)
            if not done.app_id:
                raise RuntimeError(f"a submit in the launcher JVM ended {done.state}; see {jvm.log_path}")
            out.cpu.append(jvm_cpu(jvm.pid) - before)
            out.wall.append(time.monotonic() - t)
        out.rss_mb.append(jvm_peak_mb(jvm.pid))
        return out
    finally:
        await jvm.close()


@dataclass
class Queued:
    launcher: str
    submits: int
    accepted: int
    seconds: float
    launcher_cpu: float  # the spark-submit processes', or the JVM's
    gateway_cpu: float
    peak_mb: float  # the largest spark-submit, or the JVM
    busy: str

    @property
    def per_minute(self) -> float:
        return self.accepted / self.seconds * 60 if self.seconds > 0 else 0.0


async def queued(ctx: harness.Context, cluster: YarnCluster, home: Path, launcher: str, m: int) -> Queued:
    env = {"BATCHGATE_SPARK_HOME": str(home), "BATCHGATE_SPARK_YARN_RM_URLS": cluster.rm_url,
           "BATCHGATE_SPARK_LAUNCHER": launcher, "BATCHGATE_ENGINES": "SPARK,PYSPARK"}
    async with harness.running_gateway(ctx, f"launcher-{launcher}", env=env) as gw:
        def launcher_jvm() -> list[int]:
            if launcher != "jvm":
                return []  # the spark-submit processes are counted from their exit records
            return [p for p in harness.descendants(gw.pid)[1:] if p not in gw.pids()]

        meter = ctx.cpu_meter(gw, {"yarn": cluster.pids, "launcher jvm": launcher_jvm})
        body = {"batchType": "PYSPARK", "resource": str(pi_py()), "args": ["2"], "name": NAME, "conf": CLUSTER_CONF}
        meter.start()
        first = time.time()
        async with harness.http_session() as http:
            async def post() -> str:
                async with http.post(gw.api, json=body) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"POST -> {resp.status} {await resp.text()}")
                    return str((await resp.json())["id"])

            ids = await asyncio.gather(*(post() for _ in range(m)))
        conn = await asyncpg.connect(gw.database_url)
        try:
            async def settled() -> bool:
                left = await conn.fetchval(
                    "select count(*) from batches where name = $1 and app_id is null "
                    "and state not in ('FINISHED', 'ERROR', 'CANCELED')", NAME)
                return bool(left == 0)

            await harness.wait_until(settled, 1800, every=0.2, what=f"{m} applications accepted")
            last = time.time()
            accepted = int(await conn.fetchval(
                "select count(*) from batches where name = $1 and app_id like 'application_%'", NAME))
        finally:
            await conn.close()
        peak = max((jvm_peak_mb(p) for p in launcher_jvm()), default=0.0)
        meter.stop()
        spark_submit_cpu, rss = await asyncio.to_thread(exit_records, gw.data_dir, ids)
    return Queued(launcher, m, accepted, last - first,
                  launcher_cpu=meter.used.get("launcher jvm", 0.0) + spark_submit_cpu,
                  gateway_cpu=meter.used.get("gateway", 0.0), peak_mb=max(peak, rss),
                  busy=harness.machine_share(meter))


def exit_records(data_dir: Path, ids: list[str], timeout: float = 300) -> tuple[float, float]:
    """(CPU seconds, largest peak RSS in MB) of the batches' spark-submit processes, from their runners'
    exit records (waited for: a cluster-mode spark-submit exits once YARN has the application)."""
    cpu, rss = 0.0, 0.0
    deadline = time.monotonic() + timeout
    for batch_id in ids:
        workdir = data_dir / "batches" / batch_id
        if not (workdir / "pids.json").exists():
            continue  # submitted by the launcher JVM: no process of its own
        while not (workdir / "exit.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            record: dict[str, Any] = json.loads((workdir / "exit.json").read_text())
        except (OSError, ValueError):
            continue
        cpu += float(record.get("cpu_seconds", 0.0))
        rss = max(rss, float(record.get("max_rss_kb", 0)) / 1024)
    return cpu, rss


async def run(ctx: harness.Context) -> list[Figure]:
    n, m = ctx.sizes.launcher_submits, ctx.sizes.launcher_queued
    cluster = YarnCluster(ctx.root / "yarn")
    await asyncio.to_thread(cluster.start)
    try:
        pyspark = find_spark_home(None)
        assert pyspark is not None, "pyspark is not installed"
        home = await asyncio.to_thread(spark_home_for, cluster, pyspark, ctx.root / "yarn-spark-home")
        builder = SparkSubmit(SubmitConfig(spark_home=home, python=sys.executable, yarn_followed=True))
        with Killer(cluster) as killer:
            process = await per_submit_process(builder, ctx.root / "launcher-direct", n)
            jvm = await per_submit_jvm(builder, home, ctx.root / "launcher-direct", n)
            q_process = await queued(ctx, cluster, home, "process", m)
            q_jvm = await queued(ctx, cluster, home, "jvm", m)
        killed = killer.killed
    finally:
        await asyncio.to_thread(cluster.stop)
    return figures(n, m, process, jvm, q_process, q_jvm, killed)


def figures(n: int, m: int, process: PerSubmit, jvm: PerSubmit, q_process: Queued, q_jvm: Queued,
            killed: int) -> list[Figure]:
    f = harness.figure
    out = [
        f("launcher", "CPU per cluster-mode submit, spark-submit process", process.mean(process.cpu), "s",
          detail=f"{n} submits one at a time, user+system of the process tree; wall {process.mean(process.wall):.1f} s "
                 "per submit"),
        f("launcher", "CPU per cluster-mode submit, long-lived JVM", jvm.mean(jvm.cpu), "s",
          detail=f"{n} submits one at a time after the first; wall {jvm.mean(jvm.wall):.2f} s per submit; "
                 f"the JVM's start and first submit: {jvm.first_wall:.1f} s, {jvm.first_cpu:.1f} s CPU"),
        f("launcher", "peak RSS of one spark-submit process", max(process.rss_mb), "MB",
          detail="ru_maxrss of the largest; each submit starts one"),
        f("launcher", "peak RSS of the long-lived JVM", jvm.rss_mb[0], "MB",
          detail=f"VmHWM after {n + 1} submits; one JVM for all of them"),
    ]
    for q in (q_process, q_jvm):
        what = "spark-submit process per batch" if q.launcher == "process" else "long-lived JVM"
        out.append(f("launcher", f"submits per minute, {m} queued, {what}", q.per_minute, "/min",
                     detail=f"{q.submits} PYSPARK cluster-mode batches POSTed at once, {q.accepted} accepted by "
                            f"YARN in {q.seconds:.1f} s; launcher CPU {q.launcher_cpu / max(q.submits, 1):.2f} s "
                            f"and gateway CPU {q.gateway_cpu / max(q.submits, 1):.2f} s per submit; largest "
                            f"launcher {q.peak_mb:.0f} MB; {q.busy}"))
    ratio = q_jvm.per_minute / q_process.per_minute if q_process.per_minute else float("nan")
    cpu_ratio = process.mean(process.cpu) / jvm.mean(jvm.cpu) if jvm.cpu and jvm.mean(jvm.cpu) > 0 else float("nan")
    out.append(f("launcher", "long-lived JVM / process, submits per minute", ratio, "x",
                 detail=f"CPU per submit {cpu_ratio:.1f}x less in the JVM; {killed} applications killed once "
                        "accepted"))
    return out
