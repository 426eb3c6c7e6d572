"""SPARK and PYSPARK on a real YARN cluster (tests/yarn_cluster.py: a ResourceManager and a NodeManager
started once per run), through the live gateway, in client and cluster deploy mode.

The applications are trivial (a pi with 2 partitions, a sleep, a failure), and tests that only wait
submit several batches at once, so that the matrix fits its time on 2 cores."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engines.yarn import rm_urls_from_site
from tests.gateway_process import GatewayProcess
from tests.helpers import TERMINAL, Api, basic, info
from tests.spark_cluster import TEST_APP_CLASS, build_test_jar, pi_py, reap_batch_processes, spark_home
from tests.test_spark import FAILING_SCRIPT, SLEEPING_SCRIPT
from tests.yarn_cluster import YarnCluster, spark_home_for

pytestmark = pytest.mark.slow

YARN_TIMEOUT = 150.0
CLUSTER = {"spark.master": "yarn", "spark.submit.deployMode": "cluster"}
CLIENT = {"spark.master": "yarn", "spark.submit.deployMode": "client"}
NAP_SCRIPT = """\
import sys
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("nap").getOrCreate()
time.sleep(int(sys.argv[1]))
print("rested", flush=True)
"""


@pytest.fixture(scope="session")
def yarn_spark(yarn_cluster: YarnCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spark_home_for(yarn_cluster, spark_home(), tmp_path_factory.mktemp("yarn-spark-home"))


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("yarn-scripts")
    (root / "fail.py").write_text(FAILING_SCRIPT)
    (root / "sleep.py").write_text(SLEEPING_SCRIPT)
    (root / "nap.py").write_text(NAP_SCRIPT)
    return {"fail": root / "fail.py", "sleep": root / "sleep.py", "nap": root / "nap.py", "pi": pi_py()}


@pytest.fixture(scope="module")
def test_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_jar(tmp_path_factory.mktemp("yarn-jar"))


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, yarn_cluster: YarnCluster) -> Iterator[None]:
    """Nothing a test started outlives it: its launchers, and its applications on the cluster."""
    yield
    reap_batch_processes(tmp_path / "data")
    yarn_cluster.kill_running_apps()


@pytest.fixture
def gateway(start_gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster,
            yarn_spark: Path) -> Callable[..., Awaitable[Api]]:
    async def start(**overrides: Any) -> Api:
        settings: dict[str, Any] = {"admin": ["admin"], "spark_home": yarn_spark,
                                    "spark_yarn_rm_urls": [yarn_cluster.rm_url], "kill_grace_seconds": 5.0}
        settings.update(overrides)
        return await start_gateway(**settings)

    return start


def test_the_gateway_finds_the_resource_manager_in_yarn_site(yarn_cluster: YarnCluster) -> None:
    assert rm_urls_from_site({"HADOOP_CONF_DIR": str(yarn_cluster.conf_dir)}) == [yarn_cluster.rm_url]


async def test_pyspark_cluster_mode_follows_the_resource_manager(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster, tmp_path: Path
) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(pi_py()), name="yarn-pi", args=["2"], conf=CLUSTER)
    bid = batch["id"]
    running = await api.wait_for(bid, ("RUNNING", "FINISHED", "ERROR"), timeout=YARN_TIMEOUT)
    assert running["state"] == "RUNNING" and running["appState"] == "RUNNING", running
    [app] = yarn_cluster.apps_tagged(f"batchgate-{bid}")
    assert running["appId"] == app["id"] and app["name"] == "yarn-pi" and app["applicationType"] == "SPARK"
    assert running["appUrl"] == app["trackingUrl"] and "/proxy/" in running["appUrl"]
    final = await api.wait_for(bid, timeout=YARN_TIMEOUT)
    assert final["state"] == "FINISHED" and final["appState"] == "FINISHED", final
    app = yarn_cluster.app(app["id"])
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")
    assert info(final, "spark")["amContainerLogs"] == app["amContainerLogs"]
    # spark-submit returned once YARN had the application: no JVM waits for it on the gateway.
    assert (tmp_path / "data" / "batches" / bid / "exit.json").exists()
    log = await api.full_log(bid)
    assert any(f"Submitted application {app['id']}" in line for line in log), log
    assert any(f"spark-submit returned once YARN had {app['id']}" in line for line in log), log
    assert any("spark.yarn.submit.waitAppCompletion=false" in line for line in log if "launching:" in line)
    # The driver's output, from the application master's container log once the application ended.
    assert any(f"application master log container_{app['id'][len('application_'):]}_01_000001/stdout" in line
               for line in log), log
    assert any("Pi is roughly 3.1" in line for line in log), log
    assert any("ApplicationMaster" in line for line in log), "the driver's log4j output (stderr) is there too"


async def test_spark_and_pyspark_in_both_deploy_modes_with_a_proxy_user_and_a_queue(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster, test_jar: Path
) -> None:
    """SPARK in both deploy modes, and PYSPARK in client mode (its cluster mode is the test above) as
    alice acting as bob on the etl queue: the RM shows bob as the application's user."""
    api = await gateway(impersonation={"alice": ["bob"]})
    submitted = {
        "jar-cluster": await api.submit("SPARK", str(test_jar), class_name=TEST_APP_CLASS, conf=CLUSTER),
        "jar-client": await api.submit("SPARK", str(test_jar), class_name=TEST_APP_CLASS, conf=CLIENT),
        "py-client": await api.as_user("alice").submit("PYSPARK", str(pi_py()), args=["2"], conf={
            **CLIENT, "spark.yarn.queue": "etl", "kyuubi.session.proxy.user": "bob"}),
    }
    assert submitted["py-client"]["user"] == "bob"
    finals = dict(zip(submitted, await asyncio.gather(
        *(api.wait_for(b["id"], timeout=YARN_TIMEOUT) for b in submitted.values())), strict=True))
    for what, final in finals.items():
        assert final["state"] == "FINISHED" and final["appState"] == "FINISHED", (what, final)
        [app] = yarn_cluster.apps_tagged(f"batchgate-{final['id']}")
        assert final["appId"] == app["id"] and app["finalStatus"] == "SUCCEEDED", (what, app)
        assert final["appUrl"] == app["trackingUrl"], (what, final)
        log = await api.full_log(final["id"])
        # Client mode: the driver is spark-submit, its output is the launcher's. Cluster mode: the AM's log.
        assert any("Pi is roughly 3.1" in line for line in log), (what, log)
        user, queue = ("bob", "root.etl") if what == "py-client" else (yarn_cluster.user, "root.default")
        assert (app["user"], app["queue"]) == (user, queue), (what, app)


async def test_failures_and_refusals_carry_the_reason(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster, scripts: dict[str, Path], test_jar: Path
) -> None:
    api = await gateway()
    cluster = await api.submit("PYSPARK", str(scripts["fail"]), conf=CLUSTER)
    client = await api.submit("SPARK", str(test_jar), class_name=TEST_APP_CLASS, args=["fail"], conf=CLIENT)
    queue = await api.submit("PYSPARK", str(pi_py()), conf={**CLUSTER, "spark.yarn.queue": "nope"})
    # Refused by spark-submit itself, before any application exists: bigger than the cluster's containers.
    too_big = await api.submit("PYSPARK", str(pi_py()), conf={**CLUSTER, "spark.driver.memory": "9g"})

    final = await api.wait_for(cluster["id"], timeout=YARN_TIMEOUT)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED", final
    app = yarn_cluster.app(final["appId"])
    assert app["finalStatus"] == "FAILED" and app["diagnostics"]
    assert app["diagnostics"].strip()[:100] in final["appDiagnostic"], (final, app["diagnostics"])
    # The driver's exception (from the AM's log) comes first, YARN's diagnostics after it.
    assert "ValueError: batchgate test failure in the driver" in final["appDiagnostic"], final
    log = await api.full_log(cluster["id"])
    assert any("ValueError: batchgate test failure in the driver" in line for line in log), log

    final = await api.wait_for(client["id"], timeout=YARN_TIMEOUT)
    assert final["state"] == "ERROR", final
    assert "IllegalStateException: batchgate test failure requested" in final["appDiagnostic"], final

    final = await api.wait_for(queue["id"], timeout=YARN_TIMEOUT)
    assert final["state"] == "ERROR" and final["appState"] == "FAILED", final
    assert "nope" in final["appDiagnostic"] and "queue" in final["appDiagnostic"].lower(), final
    assert final["appId"] == yarn_cluster.apps_tagged(f"batchgate-{queue['id']}")[0]["id"]

    final = await api.wait_for(too_big["id"], timeout=YARN_TIMEOUT)
    assert final["state"] == "ERROR" and final["appId"] is None, final
    assert "above the max threshold" in final["appDiagnostic"], final
    assert yarn_cluster.apps_tagged(f"batchgate-{too_big['id']}") == []


async def test_kills_through_the_gateway_and_from_outside(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster, scripts: dict[str, Path]
) -> None:
    """DELETE kills through the RM in both deploy modes; `yarn application -kill` (not through the
    gateway) is an ERROR with YARN's diagnostics."""
    api = await gateway()
    batches = [await api.submit("PYSPARK", str(scripts["sleep"]), conf=conf) for conf in (CLUSTER, CLIENT, CLUSTER)]
    apps = [await _running_app(api, yarn_cluster, batch["id"]) for batch in batches]

    async def job_done() -> dict[str, Any] | None:
        details = await api.call("GET", f"/api/v1/batches/{batches[0]['id']}/details")
        jobs = [s for s in details["steps"] if s.get("jobId") is not None and s["state"] == "SUCCEEDED"]
        return details if jobs else None

    # Cluster mode: the driver's Spark UI is reached through the RM's proxy (the tracking URL).
    details = await _eventually(job_done, "the cluster-mode driver's finished job in the details", 60)
    assert details["counters"]["jobs"] == 1 and details["counters"]["tasks"] == 2, details
    for batch in batches[:2]:
        assert (await api.kill(batch["id"]))["success"] is True
    yarn_cluster.kill_app(apps[2]["id"])
    for batch in batches[:2]:
        final = await api.wait_for(batch["id"], timeout=60)
        assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
        app = yarn_cluster.app(final["appId"])
        assert app["state"] == "KILLED", app
        log = await api.full_log(batch["id"])
        assert any(f"kill of {app['id']} sent to the ResourceManager" in line for line in log), log
    final = await api.wait_for(batches[2]["id"], timeout=60)
    assert final["state"] == "ERROR" and final["appState"] == "KILLED", final
    assert "killed by user" in final["appDiagnostic"].lower(), final


async def test_the_long_lived_launcher_submits_and_falls_back_to_spark_submit(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster, test_jar: Path, tmp_path: Path
) -> None:
    """BATCHGATE_SPARK_LAUNCHER=jvm: cluster-mode submits run in one long-lived JVM (no spark-submit process
    per batch); a submission it cannot make is made by spark-submit, whose output says why; a restarted
    gateway follows what the launcher submitted, and submits nothing again."""
    first = await gateway(spark_launcher="jvm", instance_id="gw-jvm")
    submitted = [await first.submit("PYSPARK", str(pi_py()), args=["2"], conf=CLUSTER),
                 await first.submit("SPARK", str(test_jar), class_name=TEST_APP_CLASS, conf=CLUSTER)]
    refused = await first.submit("PYSPARK", str(pi_py()), conf={**CLUSTER, "spark.driver.memory": "9g"})
    for batch in submitted:
        running = await first.wait_for(batch["id"], ("RUNNING", "FINISHED"), timeout=YARN_TIMEOUT)
        assert running["appId"] == yarn_cluster.apps_tagged(f"batchgate-{batch['id']}")[0]["id"], running
    await first.client.close()  # the launcher JVM goes with its gateway; the applications do not
    api = await gateway(spark_launcher="jvm", instance_id="gw-jvm")
    launcher_pids = set()
    for batch in submitted:
        final = await api.wait_for(batch["id"], timeout=YARN_TIMEOUT)
        assert final["state"] == "FINISHED", final
        [app] = yarn_cluster.apps_tagged(f"batchgate-{batch['id']}")
        assert final["appId"] == app["id"] and app["finalStatus"] == "SUCCEEDED", (final, app)
        log = await api.full_log(batch["id"])
        said = [line for line in log if "submitting in the long-lived launcher (pid" in line]
        assert len(said) == 1 and not any("[batchgate] launching:" in line for line in log), log
        launcher_pids.add(said[0].split("(pid ")[1].split(")")[0])
        assert any(f"YARN has {app['id']} after" in line for line in log), log
        assert any("Pi is roughly 3.1" in line for line in log), "the driver's output, from the AM's log"
        workdir = tmp_path / "data" / "batches" / batch["id"]
        assert not (workdir / "pids.json").exists(), "no spark-submit process was started for it"
    assert len(launcher_pids) == 1, launcher_pids  # one JVM submitted both
    final = await api.wait_for(refused["id"], timeout=YARN_TIMEOUT)
    assert final["state"] == "ERROR" and "above the max threshold" in final["appDiagnostic"], final
    log = await api.full_log(refused["id"])
    assert any("nothing reached YARN: spark-submit submits it instead" in line for line in log), log
    assert sum("[batchgate] launching:" in line for line in log) == 1, log


async def test_a_hanging_resource_manager_blocks_no_request(
    gateway: Callable[..., Awaitable[Api]], yarn_cluster: YarnCluster
) -> None:
    """Kyuubi #4680: a submit must not wait for the RM. SIGSTOP makes the real RM hang (its port
    accepts, nothing answers) for a while; the gateway answers, says so in the log, and carries on."""
    api = await gateway()
    batch = await api.submit("PYSPARK", str(pi_py()), args=["2"], conf=CLUSTER)
    app = await _running_app(api, yarn_cluster, batch["id"])
    yarn_cluster.pause_rm()
    try:
        started = time.monotonic()
        other = await api.submit("PYSPARK", str(pi_py()), args=["2"], conf=CLUSTER)
        assert (await api.get(batch["id"]))["state"] == "RUNNING"
        # A call that waited for the frozen RM would take its HTTP timeout (5 s) at least.
        assert time.monotonic() - started < 4.0, "a submit and a read do not wait for the RM"
        await _eventually(lambda: _log_with(api, batch["id"], "YARN ResourceManager did not answer"),
                          "the outage note", 30)
    finally:
        yarn_cluster.resume_rm()
    for bid in (batch["id"], other["id"]):
        final = await api.wait_for(bid, timeout=YARN_TIMEOUT)
        assert final["state"] == "FINISHED", final
    assert (await api.get(batch["id"]))["appId"] == app["id"]
    assert await _log_with(api, batch["id"], "YARN ResourceManager answers again")


async def test_a_killed_gateways_applications_are_found_reported_and_killable_by_another_instance(
    database_url: str, tmp_path: Path, yarn_cluster: YarnCluster, yarn_spark: Path, scripts: dict[str, Path]
) -> None:
    """kill -9 of the gateway while cluster-mode applications run on YARN (and one is being submitted):
    a second instance takes the batches over, finds each application (by its tag where the dead one had
    not learned its id yet), reports its end, kills one on request, and launches nothing twice."""
    env = {"HADOOP_CONF_DIR": str(yarn_cluster.conf_dir), "BATCHGATE_SPARK_HOME": str(yarn_spark),
           "BATCHGATE_HEARTBEAT_SECONDS": "0.5", "BATCHGATE_LEASE_SECONDS": "3"}
    g1 = await GatewayProcess(tmp_path / "g1", database_url=database_url, instance_id="g1", env=env).start()
    g2 = await GatewayProcess(tmp_path / "g2", database_url=database_url, instance_id="g2", env=env).start()
    try:
        async with aiohttp.ClientSession(base_url=g1.url, headers=basic("alice")) as one, \
                aiohttp.ClientSession(base_url=g2.url, headers=basic("alice")) as two:
            ends = await _post(one, "PYSPARK", scripts["nap"], ["20"])
            killed = await _post(one, "PYSPARK", scripts["sleep"], [])
            for bid in (ends, killed):
                await _wait_http(two, bid, ("RUNNING",))
            unnamed = await _post(one, "PYSPARK", pi_py(), ["2"])

            async def third_launch_noted() -> bool:  # the runner started and its note is in the log
                return any("[batchgate] launching:" in line for line in await _log_http(g1, unnamed))

            await _eventually(third_launch_noted, "the third launch", 60)
            g1.send(signal.SIGKILL)  # the third batch's application is being submitted right now
            await g1.proc.wait()  # type: ignore[union-attr]
            assert (await _get(two, unnamed))["appId"] is None, "the dead instance had not learned its id"
            taken = await _wait_http(two, killed, ("RUNNING",), instance="g2")
            assert (await _get(two, ends))["state"] == "RUNNING"
            async with two.delete(f"/api/v1/batches/{killed}") as resp:
                assert resp.status == 200, await resp.text()
            finals = {bid: await _wait_http(two, bid, TERMINAL) for bid in (ends, killed, unnamed)}
        assert finals[ends]["state"] == "FINISHED" and finals[ends]["kyuubiInstance"] == "g2", finals[ends]
        assert finals[unnamed]["state"] == "FINISHED", finals[unnamed]
        assert finals[killed]["state"] == "CANCELED" and finals[killed]["appState"] == "KILLED", finals[killed]
        assert yarn_cluster.app(taken["appId"])["state"] == "KILLED"
        for bid, final in finals.items():
            [app] = yarn_cluster.apps_tagged(f"batchgate-{bid}")  # one application per batch, never two
            assert final["appId"] == app["id"], (final, app)
            launches = [line for line in await _log_http(g2, bid) if "[batchgate] launching:" in line]
            assert len(launches) == 1, launches
    finally:
        await g2.stop()
        await g1.stop(signal.SIGKILL)
        for data in ("g1", "g2"):
            reap_batch_processes(tmp_path / data)


# --- helpers ------------------------------------------------------------------------------------


async def _running_app(api: Api, yarn_cluster: YarnCluster, batch_id: str) -> dict[str, Any]:
    """Wait until the batch and its YARN application run; the application's report."""
    batch = await api.wait_for(batch_id, ("RUNNING", "FINISHED", "ERROR", "CANCELED"), timeout=YARN_TIMEOUT)
    assert batch["state"] == "RUNNING", batch

    async def running() -> dict[str, Any] | None:
        apps = yarn_cluster.apps_tagged(f"batchgate-{batch_id}")
        return apps[0] if apps and apps[0]["state"] == "RUNNING" else None

    app: dict[str, Any] = await _eventually(running, "the YARN application to run", YARN_TIMEOUT)
    return app


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def _log_with(api: Api, batch_id: str, text: str) -> list[str] | None:
    log = await api.full_log(batch_id)
    return log if any(text in line for line in log) else None





async def _post(session: aiohttp.ClientSession, batch_type: str, resource: Path, args: list[str]) -> str:
    body = {"batchType": batch_type, "resource": str(resource), "args": args, "conf": CLUSTER}
    async with session.post("/api/v1/batches", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["id"])


async def _get(session: aiohttp.ClientSession, batch_id: str) -> dict[str, Any]:
    async with session.get(f"/api/v1/batches/{batch_id}") as resp:
        assert resp.status == 200, await resp.text()
        batch: dict[str, Any] = await resp.json()
        return batch


async def _wait_http(session: aiohttp.ClientSession, batch_id: str, states: tuple[str, ...],
                     instance: str | None = None) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        batch = await _get(session, batch_id)
        if batch["state"] in TERMINAL and batch["state"] not in states:
            raise AssertionError(f"batch ended {batch['state']}: {batch}")
        ok = batch["state"] in states and (instance is None or batch["kyuubiInstance"] == instance)
        return batch if ok else None

    batch: dict[str, Any] = await _eventually(reached, f"{batch_id} to be {states}", YARN_TIMEOUT)
    return batch


async def _log_http(gateway: GatewayProcess, batch_id: str) -> list[str]:
    async with aiohttp.ClientSession(headers=basic("alice")) as session, session.get(
            f"{gateway.url}/api/v1/batches/{batch_id}/localLog?from=0&size=10000") as resp:
        assert resp.status == 200, await resp.text()
        rows: list[str] = (await resp.json())["logRowSet"]
        return rows

