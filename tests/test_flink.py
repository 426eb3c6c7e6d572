"""FLINK and PYFLINK for real: `flink run` from the apache-flink package, on the local target (a mini
cluster inside the launcher) and on a session cluster started from the package's scripts on loopback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.flink_cluster import ENDLESS_PRELUDE, JOB_ID, SLOW, FlinkCluster, workdir_of
from tests.flink_cluster import cluster_fixture as cluster_fixture
from tests.flink_cluster import flink_home_fixture as flink_home_fixture
from tests.flink_cluster import reap_launchers_fixture as reap_launchers_fixture
from tests.helpers import Api, info

# The fixtures cluster, flink_home and (autouse) reap_launchers come from tests.flink_cluster: imported
# above, pytest finds them in this module as if it had defined them (module scope: one cluster here).
pytestmark = pytest.mark.slow

StartGateway = Callable[..., Awaitable[Api]]

FAILING = """
from pyflink.datastream import StreamExecutionEnvironment, RuntimeExecutionMode

def boom(x):
    if x == 3:
        raise ValueError("batchgate-test-boom")
    return x

env = StreamExecutionEnvironment.get_execution_environment()
env.set_runtime_mode(RuntimeExecutionMode.BATCH)
env.set_parallelism(1)
env.from_collection([1, 2, 3, 4]).map(boom).print()
env.execute("failing-job")
"""

BAD_COLUMN = """
from pyflink.table import EnvironmentSettings, TableEnvironment
from pyflink.table.expressions import col

t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
words = t_env.from_elements([("to", 1), ("be", 2)], ["word", "n"])
words.select(col("no_such_col")).execute().print()
"""

ENDLESS = ENDLESS_PRELUDE + """\
numbers = env.from_source(NumberSequenceSource(0, 10**12), WatermarkStrategy.no_watermarks(), "numbers")
numbers.map(slow, output_type=Types.LONG()).filter(lambda x: x % 25 == 0) \\
    .map(lambda x: f"tick {x}", output_type=Types.STRING()).print()
env.execute("endless-job")
"""

JAVA_JOB = """
package bg;

import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

public class BgJob {
    public static void main(String[] args) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        String prefix = args.length > 0 ? args[0] : "bg";
        env.fromData(1, 2, 3).map(x -> prefix + "-value-" + (x * 10)).returns(String.class).print();
        env.execute();
    }
}
"""


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, flink_home: Path) -> dict[str, Path]:
    """The word count that ships with PyFlink, a failing job, an endless one and a tiny jar."""
    root = tmp_path_factory.mktemp("flink-jobs")
    word_count = flink_home / "examples" / "datastream" / "word_count.py"
    assert word_count.is_file(), f"PyFlink's word_count example moved: {word_count}"
    (root / "failing.py").write_text(FAILING)
    (root / "bad_column.py").write_text(BAD_COLUMN)
    (root / "endless.py").write_text(ENDLESS)
    source = root / "src" / "bg" / "BgJob.java"
    source.parent.mkdir(parents=True)
    source.write_text(JAVA_JOB)
    classes = root / "classes"
    classpath = ":".join(str(p) for p in sorted((flink_home / "lib").glob("flink-dist*.jar")))
    subprocess.run(["javac", "-d", str(classes), "-cp", classpath, str(source)], check=True, timeout=120)
    subprocess.run(["jar", "--create", "--file", str(root / "bg-job.jar"), "-C", str(classes), "."], check=True,
                   timeout=60)
    return {"word_count": word_count, "failing": root / "failing.py", "endless": root / "endless.py",
            "jar": root / "bg-job.jar", "bad_column": root / "bad_column.py"}


def rest_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


async def wait_log(api: Api, batch_id: str, pattern: str, timeout: float = SLOW) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        log = await api.full_log(batch_id)
        if any(pattern in line for line in log):
            return log
        batch = await api.get(batch_id)
        if batch["state"] in ("FINISHED", "ERROR", "CANCELED") or time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never appeared in the log of {batch}: {log[-30:]}")
        await asyncio.sleep(0.2)


def launched_command(log: list[str]) -> str:
    return next(line for line in log if "[batchgate] launched pid" in line)


# --- local target -----------------------------------------------------------------------------------


async def test_word_count_on_local_target(api: Api, jobs: dict[str, Path], flink_home: Path,
                                          tmp_path: Path) -> None:
    shipped_logs = sorted(p.name for p in (flink_home / "log").iterdir())
    system_tmp = Path(tempfile.gettempdir())
    flink_tmp_before = {p.name for p in system_tmp.iterdir() if p.name.startswith(("pyflink", "flink-"))}
    batch = await api.submit("PYFLINK", str(jobs["word_count"]), name="word count")
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED", final
    assert JOB_ID.match(final["appId"]), final
    assert final["appUrl"].startswith("http://127.0.0.1:") and final["appId"] in final["appUrl"]
    assert final["appUrl"].endswith(f"/#/job/completed/{final['appId']}/overview"), "the job has ended"
    assert info(final, "flink")["target"] == "local"
    log = await api.full_log(batch["id"])
    assert f"Job has been submitted with JobID {final['appId']}" in log
    assert "(of,14)" in log and "(question:--,1)" in log, "the job's output is part of the batch log"
    command = launched_command(log)
    assert " run -t local " in command and "'pipeline.name=word count'" in command
    # Nothing stray: logs and temporary files live in the batch's own folder.
    workdir = workdir_of(tmp_path, batch["id"])
    assert list((workdir / "flink-log").glob("flink-batchgate-client-*.log"))
    assert (workdir / "tmp" / "pyflink").is_dir()
    assert sorted(p.name for p in (flink_home / "log").iterdir()) == shipped_logs
    assert {p.name for p in system_tmp.iterdir() if p.name.startswith(("pyflink", "flink-"))} == flink_tmp_before


async def test_failing_job_on_local_target_is_error(api: Api, jobs: dict[str, Path]) -> None:
    batch = await api.submit("PYFLINK", str(jobs["failing"]))
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED", final
    assert JOB_ID.match(final["appId"] or "")
    assert "ValueError: batchgate-test-boom" in final["appDiagnostic"], final["appDiagnostic"]
    assert "exit code" in final["appDiagnostic"]


async def test_bad_column_names_the_python_exception(api: Api, jobs: dict[str, Path]) -> None:
    """The Python program fails before any job: the diagnostic is the program's own exception (as for
    PYSPARK), not the launcher's "Python process exits with code: 1"."""
    batch = await api.submit("PYFLINK", str(jobs["bad_column"]))
    final = await api.wait_for(batch["id"], timeout=SLOW)
    log = await api.full_log(batch["id"])
    assert final["state"] == "ERROR" and final["appState"] == "FAILED", final
    assert "ValidationException" in final["appDiagnostic"], (final["appDiagnostic"], log[-60:])
    assert "no_such_col" in final["appDiagnostic"], final["appDiagnostic"]
    assert "Python process exits with code" not in final["appDiagnostic"]


async def test_kill_streaming_job_on_local_target(api: Api, jobs: dict[str, Path], tmp_path: Path) -> None:
    batch = await api.submit("PYFLINK", str(jobs["endless"]))
    await wait_log(api, batch["id"], "tick ")
    running = await api.get(batch["id"])
    assert running["state"] == "RUNNING" and running["appState"] == "RUNNING"
    # appUrl points at the mini cluster's web endpoint while the job runs.
    base = running["appUrl"].split("/#/")[0]
    assert rest_get(f"{base}/jobs/{running['appId']}")["state"] == "RUNNING"
    pids = json.loads((workdir_of(tmp_path, batch["id"]) / "pids.json").read_text())
    await api.kill(batch["id"])
    final = await api.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert not Path(f"/proc/{pids['child']}").exists(), "the launcher JVM is gone"


async def test_jar_on_local_target(api: Api, jobs: dict[str, Path]) -> None:
    batch = await api.submit("FLINK", str(jobs["jar"]), class_name="bg.BgJob", args=["hello"])
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "FINISHED", final
    log = await api.full_log(batch["id"])
    assert {"hello-value-10", "hello-value-20", "hello-value-30"} <= set(log)
    assert " -c bg.BgJob " in launched_command(log)


async def test_local_job_survives_gateway_restart(start_gateway: StartGateway, jobs: dict[str, Path]) -> None:
    settings = {"admin": ["admin"], "instance_id": "gw-flink-local"}
    first = await start_gateway(**settings)
    batch = await first.submit("PYFLINK", str(jobs["endless"]))
    await wait_log(first, batch["id"], "tick ")
    await first.client.close()  # a clean shutdown leaves the launcher and its mini cluster running

    second = await start_gateway(**settings)
    log = await wait_log(second, batch["id"], "re-attached by gw-flink-local", timeout=30)
    ticks = sum(1 for line in log if line.startswith("tick "))
    deadline = time.monotonic() + 30
    while sum(1 for line in await second.full_log(batch["id"]) if line.startswith("tick ")) <= ticks:
        assert time.monotonic() < deadline, "output keeps flowing after the restart"
        await asyncio.sleep(0.2)
    assert (await second.get(batch["id"]))["state"] == "RUNNING"
    await second.kill(batch["id"])
    final = await second.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED"


# --- session cluster ----------------------------------------------------------------------------------


async def test_word_count_on_session_cluster(api: Api, jobs: dict[str, Path], cluster: FlinkCluster) -> None:
    batch = await api.submit("PYFLINK", str(jobs["word_count"]), name="wc on cluster",
                             conf={"batchgate.flink.jobmanager": cluster.address})
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED", final
    job_id = final["appId"]
    assert final["appUrl"] == f"{cluster.url}/#/job/completed/{job_id}/overview"
    job = cluster.get(f"/jobs/{job_id}")
    assert job["state"] == "FINISHED" and job["name"] == "wc on cluster"
    assert final["endTime"] - job["end-time"] < 5000, "the gateway learns of the end within seconds"
    log = await api.full_log(batch["id"])
    assert " run -t remote -d " in launched_command(log)
    assert any(f"Flink job {job_id} is FINISHED" in line for line in log)


async def test_failing_job_on_session_cluster(api: Api, jobs: dict[str, Path], cluster: FlinkCluster) -> None:
    batch = await api.submit("PYFLINK", str(jobs["failing"]), conf={"batchgate.flink.jobmanager": cluster.address})
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED", final
    assert "ValueError: batchgate-test-boom" in final["appDiagnostic"]
    assert cluster.get(f"/jobs/{final['appId']}")["state"] == "FAILED"
    log = await api.full_log(batch["id"])
    assert any(line.startswith(f"Flink job {final['appId']} failure:") for line in log)


async def test_cluster_job_survives_restart_and_is_canceled(
    start_gateway: StartGateway, jobs: dict[str, Path], cluster: FlinkCluster,
) -> None:
    settings = {"admin": ["admin"], "instance_id": "gw-flink-cluster"}
    first = await start_gateway(**settings)
    batch = await first.submit("PYFLINK", str(jobs["endless"]), conf={"rest.address": "127.0.0.1",
                                                                       "rest.port": str(cluster.rest_port)})
    deadline = time.monotonic() + SLOW
    while (current := await first.get(batch["id"]))["appState"] != "RUNNING":
        assert time.monotonic() < deadline and current["state"] in ("INITIALIZED", "PENDING", "RUNNING"), current
        await asyncio.sleep(0.2)
    job_id = current["appId"]
    assert cluster.get(f"/jobs/{job_id}")["state"] == "RUNNING"
    await first.client.close()

    second = await start_gateway(**settings)
    await wait_log(second, batch["id"], "re-attached by gw-flink-cluster", timeout=30)
    assert (await second.get(batch["id"]))["state"] == "RUNNING"
    await second.kill(batch["id"])
    final = await second.wait_for(batch["id"], timeout=30)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert cluster.get(f"/jobs/{job_id}")["state"] == "CANCELED"


async def test_jar_on_session_cluster_by_gateway_default(
    start_gateway: StartGateway, jobs: dict[str, Path], cluster: FlinkCluster,
) -> None:
    api = await start_gateway(admin=["admin"], flink_target="remote", flink_jobmanager=cluster.address)
    batch = await api.submit("FLINK", str(jobs["jar"]), class_name="bg.BgJob", args=["remote"])
    final = await api.wait_for(batch["id"], timeout=SLOW)
    assert final["state"] == "FINISHED", final
    assert cluster.get(f"/jobs/{final['appId']}")["state"] == "FINISHED"
