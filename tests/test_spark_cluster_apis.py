"""Spark on Kubernetes, which cannot run here, and the YARN faults a real cluster cannot be made to show:
the command lines, and the state, kill and recovery logic against a fake Kubernetes API and a fake
ResourceManager (real aiohttp servers). End-to-end tests go through the live gateway with a fake
spark-submit that talks to the fake Kubernetes API as the real one would. Spark on a real YARN cluster is
tests/test_spark_yarn.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engines.spark_state import AppIds
from engines.spark_status import K8sApi, StatusUnavailable, YarnApi
from engines.spark_submit import SparkSubmit, SubmitConfig
from engines.yarn import YarnApp
from tests.fake_k8s_api import FakeKubernetesApi
from tests.fake_yarn_rm import FakeYarnResourceManager
from tests.helpers import Api, info
from tests.spark_cluster import free_port, reap_batch_processes
from tests.test_spark import spec

BATCH = "0b6f6c8e-5d7e-4a4e-9d1e-3a3c2f6b1a00"
TOKEN = "t0ken-for-tests"

FAKE_SPARK_SUBMIT = '''#!{python}
"""A fake spark-submit for tests: it submits to the fake Kubernetes API and reports like the real
launcher (waiting for the application to end), or plays a client-mode driver for other masters."""
import json, os, sys, time, urllib.error, urllib.request, uuid

home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(home, "fake.json")) as f:
    cfg = json.load(f)
args = sys.argv[1:]
opts, conf, i = {{}}, {{}}, 0
while i < len(args) and args[i].startswith("--"):
    if args[i] == "--conf":
        key, value = args[i + 1].split("=", 1)
        conf[key] = value
    else:
        opts[args[i]] = args[i + 1]
    i += 2
batch = conf["spark.batchgate.batch.id"]
env = {{k: os.environ.get(k) for k in ("SPARK_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "TMPDIR")}}
with open(os.path.join(home, "calls", batch + ".json"), "w") as f:
    json.dump({{"argv": sys.argv, "opts": opts, "conf": conf, "resource": args[i], "args": args[i + 1:],
               "env": env, "pid": os.getpid()}}, f)
print("fake spark-submit " + " ".join(sys.argv[1:3]), flush=True)
if "spark.fake.submitError" in conf:
    print('Exception in thread "main" ' + conf["spark.fake.submitError"], flush=True)
    sys.exit(1)


def call(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data,
                                 headers={{"Content-Type": "application/json", **(headers or {{}})}})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


master = opts["--master"]
if master.startswith("k8s://"):
    api = master[len("k8s://"):]
    ns = conf.get("spark.kubernetes.namespace", "default")
    app = "spark-" + uuid.uuid4().hex
    pod = opts.get("--name", "app") + "-" + uuid.uuid4().hex[:8] + "-driver"
    labels = {{"spark-role": "driver", "spark-app-selector": app}}
    for key, value in conf.items():
        if key.startswith("spark.kubernetes.driver.label."):
            labels[key[len("spark.kubernetes.driver.label."):]] = value
    headers = {{"Authorization": "Bearer " + cfg["k8s_token"]}}
    call("POST", f"{{api}}/api/v1/namespaces/{{ns}}/pods", {{"metadata": {{"name": pod, "labels": labels}}}}, headers)
    print(f"26/01/01 00:00:00 INFO KubernetesClientApplication: Deployed Spark application "
          f"{{opts.get('--name')}} with application ID {{app}} and submission ID {{ns}}:{{pod}} "
          "into Kubernetes", flush=True)
    while True:
        status, body = call("GET", f"{{api}}/api/v1/namespaces/{{ns}}/pods/{{pod}}", headers=headers)
        if status == 404:
            print("the driver pod was deleted", flush=True)
            sys.exit(1)
        phase = body["status"]["phase"]
        print(f"26/01/01 00:00:01 INFO LoggingPodStatusWatcherImpl: Application status for {{app}} "
              f"(phase: {{phase}})", flush=True)
        if phase in ("Succeeded", "Failed"):
            sys.exit(0 if phase == "Succeeded" else 1)
        time.sleep(0.3)
elif master.startswith("spark://") and opts.get("--deploy-mode") == "cluster":
    print("26/01/01 00:00:00 INFO RestSubmissionClient: Submission successfully created as "
          "driver-20260101000000-0042. Polling submission state...", flush=True)
else:
    app = "local-" + str(int(time.time() * 1000))
    if conf.get("spark.fake.quiet") == "true":  # a driver that logs nothing, like log4j at WARN
        os.makedirs(conf["spark.eventLog.dir"][len("file://"):] + "/eventlog_v2_" + app)
    else:
        print(f"26/01/01 00:00:00 INFO RollingEventLogFilesWriter: Logging events to "
              f"file:/nowhere/eventlog_v2_{{app}}/events_1_{{app}}.zstd", flush=True)
    print("fake driver running", flush=True)
    time.sleep(float(conf.get("spark.fake.sleep", "600")))
    print("Pi is roughly 3.14", flush=True)
'''


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _reap(tmp_path: Path) -> Iterator[None]:
    """Runs after the gateways are gone: nothing a batch started outlives its test."""
    yield
    reap_batch_processes(tmp_path / "data")


@pytest.fixture
async def rm() -> AsyncIterator[FakeYarnResourceManager]:
    fake = FakeYarnResourceManager()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def k8s() -> AsyncIterator[FakeKubernetesApi]:
    fake = FakeKubernetesApi(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "k8s-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    home = tmp_path / "fake-spark-home"
    (home / "bin").mkdir(parents=True)
    (home / "calls").mkdir()
    script = home / "bin" / "spark-submit"
    script.write_text(FAKE_SPARK_SUBMIT.format(python=sys.executable))
    script.chmod(0o755)
    (home / "fake.json").write_text(json.dumps({"k8s_token": TOKEN}))
    return home


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text("print('the job')\n")
    return path


@pytest.fixture
def gateway(
    start_gateway: Callable[..., Awaitable[Api]], fake_home: Path, token_file: Path
) -> Callable[..., Awaitable[Api]]:
    async def start(**overrides: Any) -> Api:
        settings: dict[str, Any] = {
            "admin": ["admin"], "spark_home": fake_home, "spark_k8s_token_file": token_file,
            "kill_grace_seconds": 2.0,
        }
        settings.update(overrides)
        return await start_gateway(**settings)

    return start


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def builder(home: Path) -> SparkSubmit:
    return SparkSubmit(SubmitConfig(spark_home=home, python=sys.executable))


def confs(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")


# --- command lines ------------------------------------------------------------------------------


def test_yarn_command_lines_tag_the_application(fake_home: Path, job: Path, tmp_path: Path) -> None:
    cluster = builder(fake_home).plan(spec(resource=str(job), workdir=tmp_path, conf={
        "spark.master": "yarn", "spark.submit.deployMode": "cluster", "spark.yarn.tags": "team-a,nightly",
        "spark.yarn.queue": "etl"}))
    c = confs(cluster.argv)
    assert cluster.argv[cluster.argv.index("--master") + 1] == "yarn"
    assert cluster.argv[cluster.argv.index("--deploy-mode") + 1] == "cluster"
    assert c["spark.yarn.tags"] == f"team-a,nightly,batchgate-{BATCH}"
    assert c["spark.batchgate.batch.id"] == BATCH
    assert c["spark.yarn.queue"] == "etl"
    assert "spark.eventLog.dir" not in c and "spark.local.dir" not in c  # the driver is not on this host
    client = builder(fake_home).plan(spec(resource=str(job), workdir=tmp_path, conf={"spark.master": "yarn"}))
    c = confs(client.argv)
    assert c["spark.yarn.tags"] == f"batchgate-{BATCH}"
    assert c["spark.local.dir"] == str(tmp_path / "local")  # the driver is here, in the launcher
    assert "spark.yarn.submit.waitAppCompletion" not in confs(cluster.argv), "no RM to follow: it must wait"
    # A gateway that follows the RM lets a cluster-mode spark-submit return once YARN has the application.
    followed = SparkSubmit(SubmitConfig(spark_home=fake_home, python=sys.executable, yarn_followed=True))
    plan = followed.plan(spec(resource=str(job), workdir=tmp_path, conf={
        "spark.master": "yarn", "spark.submit.deployMode": "cluster"}))
    assert confs(plan.argv)["spark.yarn.submit.waitAppCompletion"] == "false" and not plan.launcher_waits
    plan = followed.plan(spec(resource=str(job), workdir=tmp_path, conf={
        "spark.master": "yarn", "spark.submit.deployMode": "cluster", "spark.yarn.submit.waitAppCompletion": "true"}))
    assert confs(plan.argv)["spark.yarn.submit.waitAppCompletion"] == "true" and plan.launcher_waits
    plan = followed.plan(spec(resource=str(job), workdir=tmp_path, conf={"spark.master": "yarn"}))
    assert "spark.yarn.submit.waitAppCompletion" not in confs(plan.argv), "client mode: the launcher is the driver"


def test_k8s_command_lines_label_the_driver(fake_home: Path, job: Path, tmp_path: Path) -> None:
    plan = builder(fake_home).plan(spec(resource=str(job), workdir=tmp_path, user="bob", real_user="admin", conf={
        "spark.master": "k8s://https://10.0.0.1:6443", "spark.submit.deployMode": "cluster",
        "spark.kubernetes.namespace": "jobs", "spark.kubernetes.container.image": "spark:4"}))
    c = confs(plan.argv)
    assert plan.argv[plan.argv.index("--master") + 1] == "k8s://https://10.0.0.1:6443"
    assert plan.argv[plan.argv.index("--proxy-user") + 1] == "bob"
    assert c["spark.kubernetes.driver.label.batchgate-batch-id"] == BATCH
    assert c["spark.kubernetes.namespace"] == "jobs"
    assert "spark.yarn.tags" not in c


# --- the ResourceManager client -----------------------------------------------------------------


@pytest.mark.parametrize(("state", "final", "expected"), [
    ("NEW_SAVING", "UNDEFINED", "PENDING"), ("ACCEPTED", "UNDEFINED", "PENDING"), ("RUNNING", "UNDEFINED", "RUNNING"),
    ("FINISHED", "SUCCEEDED", "FINISHED"), ("FINISHED", "FAILED", "FAILED"), ("FINISHED", "KILLED", "KILLED"),
    ("FINISHED", "UNDEFINED", "FINISHED"), ("FAILED", "FAILED", "FAILED"), ("KILLED", "KILLED", "KILLED"),
    ("SOMETHING_NEW", "UNDEFINED", "UNKNOWN"),
])
def test_yarn_reports_map_to_app_states(state: str, final: str, expected: str) -> None:
    """Every combination of YARN state and final status, including those the real cluster in
    test_spark_yarn.py is not made to produce (an AM that unregisters as KILLED or UNDEFINED)."""
    app = YarnApp.from_json({
        "id": "application_1_0001", "state": state, "finalStatus": final, "applicationTags": "Team-A,batchgate-x",
        "diagnostics": " AM exited with exitCode: 13 ", "trackingUrl": "http://rm:8088/proxy/application_1_0001/",
        "amContainerLogs": "http://nm1:8042/node/containerlogs/container_e07_1_0001_01_000001/alice"})
    assert app.app_state == expected and app.terminal == (state in ("FINISHED", "FAILED", "KILLED"))
    assert app.diagnostic == ("AM exited with exitCode: 13" if expected in ("FAILED", "KILLED") else None)
    assert app.tags == ("team-a", "batchgate-x")
    assert app.am_container == ("http://nm1:8042", "container_e07_1_0001_01_000001")


async def test_yarn_api_tries_the_next_rm_and_reports_when_none_answers(rm: FakeYarnResourceManager) -> None:
    """RM HA: a dead RM before a live one, then an RM failing over (503). A fake, because the one real RM
    of test_spark_yarn.py has no standby and cannot be made to answer 503."""
    dead = f"http://127.0.0.1:{free_port()}"
    app_id = rm.add_app(tags=f"batchgate-{BATCH}", state="RUNNING")
    async with aiohttp.ClientSession() as session:
        status = await YarnApi([dead, rm.url], batch_id=BATCH, cluster=True).status(session, AppIds())
        assert status.app_id == app_id
        rm.down = True
        with pytest.raises(StatusUnavailable, match="503"):
            await YarnApi([dead, rm.url], batch_id=BATCH, cluster=True).status(session, AppIds(app_id=app_id))


# --- the Kubernetes client ----------------------------------------------------------------------


async def test_k8s_api_finds_the_driver_pod_by_label_and_deletes_it(k8s: FakeKubernetesApi, token_file: Path) -> None:
    api = K8sApi(k8s.url, batch_id=BATCH, namespace="jobs", token_file=token_file)
    async with aiohttp.ClientSession() as session:
        assert not (await api.status(session, AppIds())).found
        k8s.add_pod("jobs", "exec-1", {"batchgate-batch-id": BATCH, "spark-role": "executor"})
        k8s.add_pod("other", "drv-0", {"batchgate-batch-id": BATCH, "spark-role": "driver"})
        k8s.add_pod("jobs", "drv-1", {"batchgate-batch-id": BATCH, "spark-role": "driver",
                                      "spark-app-selector": "spark-0123456789abcdef0123"})
        status = await api.status(session, AppIds())
        assert status.found and status.state == "PENDING" and status.ids == {"pod": "drv-1", "namespace": "jobs"}
        assert status.app_id == "spark-0123456789abcdef0123"
        assert status.app_url == f"{k8s.url}/api/v1/namespaces/jobs/pods/drv-1/log"
        k8s.set_phase("jobs", "drv-1", "Running")
        assert (await api.status(session, AppIds())).state == "RUNNING"
        k8s.set_phase("jobs", "drv-1", "Failed", exit_code=1, reason="Error", message="boom")
        status = await api.status(session, AppIds())
        assert (status.state, status.terminal) == ("FAILED", True)
        assert status.diagnostic == "driver container Error boom (exit code 1)"
        k8s.set_phase("jobs", "drv-1", "Succeeded", exit_code=0, reason="Completed")
        assert (await api.status(session, AppIds())).state == "FINISHED"
        assert await api.kill(session, AppIds(pod="drv-1", namespace="jobs")) == "driver pod jobs/drv-1 deleted"
        assert k8s.deleted == ["drv-1"] and ("other", "drv-0") in k8s.pods
        assert not (await api.status(session, AppIds())).found
        token_file.write_text("wrong")
        with pytest.raises(StatusUnavailable, match="401"):
            await api.status(session, AppIds())


# --- end to end: the gateway, a fake spark-submit, and the fake cluster APIs ----------------------


async def test_client_mode_app_whose_launcher_died_with_the_gateway_is_reported_lost(
    gateway: Callable[..., Awaitable[Api]], job: Path, tmp_path: Path
) -> None:
    first = await gateway(instance_id="gw-spark-2")
    batch = await first.submit("PYSPARK", str(job), conf={"spark.master": "local[2]"})
    bid = batch["id"]
    running = await eventually(lambda: _batch_with(first, bid, state="RUNNING"), "RUNNING")
    assert running["appId"].startswith("local-")
    await first.client.close()
    _kill_launcher_and_runner(tmp_path / "data" / "batches" / bid)
    second = await gateway(instance_id="gw-spark-2")
    final = await second.wait_for(bid, timeout=20)
    assert final["state"] == "ERROR", final
    assert f"{running['appId']} was lost" in final["appDiagnostic"]
    assert "client mode the driver runs inside the launcher" in final["appDiagnostic"]


async def test_client_mode_app_that_outlives_a_gateway_restart_finishes(
    gateway: Callable[..., Awaitable[Api]], job: Path
) -> None:
    first = await gateway(instance_id="gw-spark-3")
    batch = await first.submit("PYSPARK", str(job), conf={"spark.master": "local[2]", "spark.fake.sleep": "3"})
    bid = batch["id"]
    await eventually(lambda: _batch_with(first, bid, state="RUNNING"), "RUNNING")
    await first.client.close()
    second = await gateway(instance_id="gw-spark-3")
    final = await second.wait_for(bid, timeout=20)
    assert final["state"] == "FINISHED", final
    log = await second.full_log(bid)
    assert log.count("fake driver running") == 1 and log.count("Pi is roughly 3.14") == 1, log


async def test_quiet_driver_is_found_by_its_event_log(gateway: Callable[..., Awaitable[Api]], job: Path) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(job), conf={"spark.master": "local[2]", "spark.fake.quiet": "true"})
    running = await eventually(lambda: _batch_with(api, batch["id"], state="RUNNING"), "RUNNING")
    assert running["appId"].startswith("local-") and running["appState"] == "RUNNING"
    assert not any("Logging events" in line for line in await api.full_log(batch["id"]))


async def test_standalone_cluster_app_that_cannot_be_followed_is_reported_lost(
    gateway: Callable[..., Awaitable[Api]], fake_home: Path, tmp_path: Path
) -> None:
    dead = free_port()
    master = f"spark://127.0.0.1:{free_port()}"
    api = await gateway(spark_master_web_urls={master: f"http://127.0.0.1:{dead}"}, spark_rest_port=dead,
                        spark_lost_after_seconds=1.0)
    jar = tmp_path / "app.jar"
    jar.write_bytes(b"PK")
    batch = await api.submit("SPARK", str(jar), class_name="com.example.Main",
                             conf={"spark.master": master, "spark.submit.deployMode": "cluster"})
    final = await api.wait_for(batch["id"], timeout=20)
    assert final["state"] == "ERROR" and final["appId"] == "driver-20260101000000-0042", final
    assert "lost contact with the standalone master" in final["appDiagnostic"], final
    log = await api.full_log(batch["id"])
    assert sum("standalone master did not answer" in line for line in log) == 1, "said once, not every poll"


async def test_k8s_cluster_batch_follows_its_driver_pod(
    gateway: Callable[..., Awaitable[Api]], k8s: FakeKubernetesApi, fake_home: Path, job: Path
) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(job), name="k8s-job", conf={
        "spark.master": f"k8s://{k8s.url}", "spark.submit.deployMode": "cluster",
        "spark.kubernetes.namespace": "jobs"})
    bid = batch["id"]
    pod = await eventually(lambda: _pod(k8s, bid), "the driver pod")
    name, app_id = pod["metadata"]["name"], pod["metadata"]["labels"]["spark-app-selector"]
    assert pod["metadata"]["namespace"] == "jobs"
    await eventually(lambda: _batch_with(api, bid, appId=app_id), "the appId")
    k8s.set_phase("jobs", name, "Running")
    running = await eventually(lambda: _batch_with(api, bid, state="RUNNING"), "RUNNING", 10)
    assert running["appUrl"] == f"{k8s.url}/api/v1/namespaces/jobs/pods/{name}/log"
    assert any(r.startswith("GET /api/v1/namespaces/jobs/pods?labelSelector=batchgate-batch-id") for r in k8s.requests)
    k8s.set_phase("jobs", name, "Succeeded", exit_code=0, reason="Completed")
    final = await api.wait_for(bid, timeout=10)
    assert final["state"] == "FINISHED" and info(final, "spark")["pod"] == name, final


async def test_k8s_failed_driver_is_error_with_its_exit(
    gateway: Callable[..., Awaitable[Api]], k8s: FakeKubernetesApi, job: Path
) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(job), conf={
        "spark.master": f"k8s://{k8s.url}", "spark.submit.deployMode": "cluster"})
    pod = await eventually(lambda: _pod(k8s, batch["id"]), "the driver pod")
    k8s.set_phase("default", pod["metadata"]["name"], "Failed", exit_code=1, reason="Error", message="OOM?")
    final = await api.wait_for(batch["id"], timeout=10)
    assert final["state"] == "ERROR" and "exit code 1" in final["appDiagnostic"], final


async def test_k8s_kill_deletes_the_driver_pod(
    gateway: Callable[..., Awaitable[Api]], k8s: FakeKubernetesApi, job: Path
) -> None:
    api = await gateway()
    batch = await api.submit("PYSPARK", str(job), conf={
        "spark.master": f"k8s://{k8s.url}", "spark.submit.deployMode": "cluster"})
    pod = await eventually(lambda: _pod(k8s, batch["id"]), "the driver pod")
    k8s.set_phase("default", pod["metadata"]["name"], "Running")
    await eventually(lambda: _batch_with(api, batch["id"], state="RUNNING"), "RUNNING")
    assert (await api.kill(batch["id"]))["success"] is True
    final = await api.wait_for(batch["id"], timeout=10)
    assert final["state"] == "CANCELED" and final["appState"] == "KILLED", final
    assert k8s.deleted == [pod["metadata"]["name"]]


# --- helpers ------------------------------------------------------------------------------------


async def _pod(k8s: FakeKubernetesApi, batch_id: str) -> dict[str, Any] | None:
    return k8s.pod_by_label("batchgate-batch-id", batch_id)


async def _batch_with(api: Api, batch_id: str, **expected: str) -> dict[str, Any] | None:
    batch: dict[str, Any] = await api.get(batch_id)
    assert batch["state"] not in ("FINISHED", "ERROR", "CANCELED"), batch
    return batch if all(batch.get(k) == v for k, v in expected.items()) else None


def _kill_launcher_and_runner(workdir: Path) -> None:
    """What a host crash does to a launcher: it is gone, and nothing recorded how it ended."""
    pids = json.loads((workdir / "pids.json").read_text())
    os.kill(pids["runner"], signal.SIGKILL)
    os.killpg(pids["child"], signal.SIGKILL)
    assert not (workdir / "exit.json").exists()
